"""Save a live AMI stream as an ``.ami`` capture (raw bytes exactly as received) for support (``qmon record``).

The file holds what the capture session read, byte for byte: the banner, our Login response, every event,
and the Logoff answer at the end — the format of ``tests/fixtures/*.ami``, which ``qmon replay`` reads
(``.gz`` names are gzipped). Only the bytes *received* are written: the Login action (with the secret) is
sent, never stored, and the secret is never printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import time
from pathlib import Path
from typing import IO, cast

from monitor.ami.wire import WireParser, encode, first


class RecordError(Exception):
    """Recording cannot start or went wrong (message is safe to print: never holds the secret)."""


def _open_out(path: Path) -> IO[bytes]:
    try:
        if path.name.endswith(".gz"):
            return cast(IO[bytes], gzip.open(path, "wb"))
        return path.open("wb")
    except OSError as exc:
        raise RecordError(f"cannot write {path}: {exc.strerror}") from None


async def record(host: str, port: int, user: str, secret: str, out: Path, duration: float | None = None,
                 timeout_s: float = 10.0, stop: asyncio.Event | None = None) -> tuple[int, int]:
    """Record until ``duration`` elapses or ``stop`` is set; returns (messages, bytes) written."""
    stop = stop or asyncio.Event()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError) as exc:
        raise RecordError(f"cannot connect to AMI {host}:{port}: {exc or type(exc).__name__}") from None
    parser = WireParser(expect_banner=True)
    messages = size = 0
    f = _open_out(out)
    try:
        writer.write(encode({"Action": "Login", "ActionID": "qmon-record-1", "Username": user, "Secret": secret,
                             "Events": "on"}))
        logged_in = False
        started = 0.0
        deadline = time.monotonic() + timeout_s
        end: float | None = None
        goodbye = False
        while not goodbye:
            now = time.monotonic()
            if not logged_in and now > deadline:
                raise RecordError(f"no answer to Login from AMI {host}:{port} within {timeout_s:.0f} s")
            if logged_in and end is None and (stop.is_set() or (duration is not None and now >= started + duration)):
                writer.write(encode({"Action": "Logoff", "ActionID": "qmon-record-2"}))
                end = now + 2.0  # wait a little for the Goodbye so the capture ends like Asterisk's own
            if end is not None and now >= end:
                break
            try:  # poll: the stop/duration/deadline checks above run at least every 0.2 s
                data = await asyncio.wait_for(reader.read(65536), 0.2)
            except TimeoutError:
                continue
            if not data:
                break  # Asterisk closed the connection (shutdown, or after Logoff)
            f.write(data)
            size += len(data)
            for msg in parser.feed(data):
                messages += 1
                if first(msg.get("ActionID")) == "qmon-record-1":
                    if first(msg.get("Response")) != "Success":
                        reason = first(msg.get("Message")) or "refused"
                        raise RecordError(f"AMI login as {user!r} on {host}:{port} refused: {reason}")
                    logged_in, started = True, time.monotonic()
                elif first(msg.get("ActionID")) == "qmon-record-2":
                    goodbye = True
    except BaseException:
        f.close()
        with contextlib.suppress(OSError):
            os.unlink(out)  # a capture without a successful login is useless (and confusing in a support case)
        raise
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    f.close()
    return messages, size
