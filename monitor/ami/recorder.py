"""``qmon record``: save a live AMI stream as an ``.ami`` capture (raw bytes exactly as received) for support.

The file holds what the capture session read, byte for byte: the banner, our Login response, every event,
and the Logoff answer at the end — the format of ``tests/fixtures/*.ami``, which ``qmon replay`` reads
(``.gz`` names are gzipped). Only the bytes *received* are written: the Login action (with the secret) is
sent, never stored, and the secret is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, cast

from monitor.ami.wire import WireParser, encode, first

DEFAULT_SECRET_ENV = "QMON_AMI_SECRET"


class RecordError(Exception):
    """Recording cannot start or went wrong (message is safe to print: never holds the secret)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qmon record", description="Save a live AMI stream as an .ami capture.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5038)
    p.add_argument("--user", default="qmon", help="AMI username (manager.conf)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--secret-env", metavar="VAR", help=f"environment variable holding the secret "
                                                      f"(default {DEFAULT_SECRET_ENV})")
    g.add_argument("--secret-file", metavar="F", help="file holding the secret (first line)")
    p.add_argument("--out", required=True, help="capture file to write (.ami, or .ami.gz to compress)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds "
                                                                              "(default: until Ctrl-C/SIGTERM)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="connect/login timeout")
    return p


def _secret(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    if args.secret_file:
        try:
            lines = Path(args.secret_file).read_text().splitlines()
        except OSError as exc:
            raise RecordError(f"cannot read --secret-file {args.secret_file}: {exc.strerror}") from None
        if not lines or not lines[0].strip():
            raise RecordError(f"--secret-file {args.secret_file} is empty")
        return lines[0].strip()
    var = args.secret_env or DEFAULT_SECRET_ENV
    if var not in env:
        raise RecordError(f"no AMI secret: set {var} or pass --secret-file")
    return env[var]


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


def cmd_record(argv: list[str], env: Mapping[str, str]) -> int:
    """Entry point of ``qmon record``."""
    args = _parser().parse_args(argv)
    try:
        secret = _secret(args, env)
    except RecordError as exc:
        print(f"qmon record: {exc}", file=sys.stderr)
        return 2

    async def main() -> tuple[int, int]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)  # only possible in the main thread
        return await record(args.host, args.port, args.user, secret, Path(args.out), args.duration, args.timeout,
                            stop)

    try:
        messages, size = asyncio.run(main())
    except RecordError as exc:
        print(f"qmon record: {exc}", file=sys.stderr)
        return 1
    print(f"qmon record: {messages} messages, {size} bytes written to {args.out}", file=sys.stderr)
    return 0
