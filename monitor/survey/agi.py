"""FastAGI wire protocol: request headers, commands and replies (our own reader, not panoramisk's).

panoramisk 1.4 loops forever on its header read when the peer hangs up early, so headers are read here
with a deadline and a byte limit. Replies are ``200 result=<n> [(data)] [key=value]``; ``HANGUP`` lines may
arrive at any time once the channel is gone (AGISIGHUP), after which commands get ``511``.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from monitor.core.conversation import Ask, Play, Reply, SetVar

_REPLY = re.compile(r"^(\d{3})[ -](?:result=(-?[^\s(]*))?\s*(?:\((.*?)\))?\s*(.*)$")


class AgiError(Exception):
    """The peer broke the protocol (bad headers, oversize, timeout, garbage reply)."""


class AgiHangup(Exception):
    """The channel is gone (HANGUP line, result=-1, 511, connection closed)."""


async def read_headers(reader: asyncio.StreamReader, timeout_s: float, max_bytes: int) -> dict[str, str]:
    """Read ``agi_key: value`` lines up to the blank line, within ``timeout_s`` and ``max_bytes``."""
    headers: dict[str, str] = {}
    total = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AgiError("header timeout")
        try:
            line = await asyncio.wait_for(reader.readline(), remaining)
        except TimeoutError as exc:
            raise AgiError("header timeout") from exc
        except (ValueError, asyncio.LimitOverrunError) as exc:  # one line over the stream limit
            raise AgiError("header line too long") from exc
        if not line or not line.endswith(b"\n"):
            # EOF (possibly mid-line): the peer vanished. Never loop on it (panoramisk 1.4 does).
            raise AgiHangup("closed during headers")
        total += len(line)
        if total > max_bytes:
            raise AgiError("headers too large")
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if not text:
            if not headers:
                continue  # tolerate a leading blank line
            return headers
        key, sep, value = text.partition(":")
        if not sep or not key.startswith("agi_"):
            raise AgiError("malformed header line")
        headers[key.strip()] = value.strip()


@dataclass(frozen=True, slots=True)
class AgiReply:
    """One parsed reply line."""

    code: int
    result: str
    data: str
    rest: str


def parse_reply(line: str) -> AgiReply:
    """Parse ``200 result=4 (timeout) endpos=1234`` into its parts."""
    m = _REPLY.match(line.strip())
    if m is None:
        raise AgiError("unparseable reply")
    return AgiReply(int(m.group(1)), m.group(2) or "", m.group(3) or "", m.group(4) or "")


def quote(arg: str) -> str:
    """Quote one AGI argument (spaces and quotes would split it)."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(cmd: Ask | Play | SetVar) -> str:
    """The AGI command line for a conversation command."""
    if isinstance(cmd, Ask):
        return f"GET DATA {cmd.prompt} {cmd.timeout_ms} {cmd.max_digits}"
    if isinstance(cmd, Play):
        return f'STREAM FILE {cmd.prompt} ""'
    return f"SET VARIABLE {cmd.name} {quote(cmd.value)}"


class AgiChannel:
    """One FastAGI connection: send a command, wait for its reply (bounded), normalise hang-ups.

    ``hungup``: the channel is gone (HANGUP line, ``result=-1``, 511); only commands Asterisk allows on a dead
    channel (SET VARIABLE, VERBOSE: res_agi.c's ``dead`` flag) are still sent. ``closed``: the socket is gone
    or the peer stopped answering (``stalled``); nothing more is sent.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_line: int = 8192) -> None:
        self.reader = reader
        self.writer = writer
        self.max_line = max_line
        self.hungup = False
        self.closed = False
        self.stalled = False
        self.commands = 0

    async def command(self, line: str, timeout_s: float, *, dead_ok: bool = False) -> AgiReply:
        """Send one command line and return its final reply within ``timeout_s`` (s).

        AgiHangup when the channel is gone (or the socket closed); AgiError when no reply came in time (the
        connection is then unusable: a late reply would be taken for the next command's).
        """
        if self.closed or (self.hungup and not dead_ok):
            raise AgiHangup("already hung up")
        try:
            self.writer.write(line.encode() + b"\n")
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            self.hungup = self.closed = True
            raise AgiHangup("write failed") from exc
        self.commands += 1
        try:
            # asyncio.timeout, not wait_for: no extra task per command (this is the hot path).
            async with asyncio.timeout(timeout_s):
                return await self._reply()
        except TimeoutError as exc:
            self.closed = self.stalled = True
            raise AgiError(f"no reply within {timeout_s:.1f}s") from exc

    async def _reply(self) -> AgiReply:
        while True:
            try:
                raw = await self.reader.readline()
            except (ConnectionError, OSError, ValueError, asyncio.LimitOverrunError) as exc:
                self.hungup = self.closed = True
                raise AgiHangup("read failed") from exc
            if not raw:
                self.hungup = self.closed = True
                raise AgiHangup("closed")
            text = raw.decode("utf-8", "replace").strip()
            if not text:
                continue
            if text.upper() == "HANGUP":
                # Sent asynchronously when the channel hangs up (seen twice in a row); the command's own
                # reply still follows (recorded: HANGUP, then "511 Command Not Permitted..." 2 s later).
                self.hungup = True
                continue
            reply = parse_reply(text)
            if text[3:4] == "-":
                # 520-... multi-line usage text: skip up to the closing "520 " line.
                continue
            if reply.code == 511 or (reply.code == 200 and reply.result == "-1"):
                self.hungup = True
                raise AgiHangup(f"{reply.code} result={reply.result}")
            return reply

    async def close(self) -> None:
        """Close the socket (Asterisk then continues the dialplan)."""
        self.closed = True
        try:
            self.writer.close()
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


def to_reply(reply: AgiReply) -> Reply:
    """Normalise a successful reply for the conversation state machine."""
    if reply.code != 200:
        # 510/520: our command was wrong; treat as no input so the caller is not stuck.
        return Reply(digits="", timeout=True)
    # GET DATA's result is the digit string itself ("0" is a valid NPS answer; empty = nothing typed).
    return Reply(digits=reply.result, timeout=reply.data == "timeout")
