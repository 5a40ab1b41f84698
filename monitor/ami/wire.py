"""The AMI wire format: an incremental, pure parser and an encoder.

Asterisk sends ``Key: Value`` lines ended by CRLF, one blank line between messages, after a one-line
banner (``Asterisk Call Manager/11.0.0``). The parser accepts any chunking of the byte stream (a message
may arrive split anywhere, even inside a CRLF) and bare LF line ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Headers = dict[str, str | list[str]]

#: A message larger than this is garbage (or an attack): it is dropped and counted, never buffered forever.
MAX_MESSAGE_BYTES = 1 << 20
#: Every AMI message has one of these (events, responses, and the actions a server reads); a block without any is
#: not AMI (random bytes, lines without a colon).
_AMI_KEYS = frozenset({"Event", "Response", "ActionID", "Action"})


class WireParser:
    """Turns AMI bytes into header dicts; duplicate keys become lists, as in the ``.jsonl`` captures."""

    def __init__(self, expect_banner: bool = True, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._buf = bytearray()
        self._expect_banner = expect_banner
        self._max = max_message_bytes
        self.banner: str | None = None
        self.oversized = 0
        self.bad_lines = 0
        self.unparseable = 0  # blocks that are not AMI messages (still returned: the caller decides)

    def feed(self, data: bytes) -> list[Headers]:
        """Add bytes; return every message completed by them, in order."""
        buf = self._buf
        buf += data
        out: list[Headers] = []
        pos = 0
        if self._expect_banner and self.banner is None:
            nl = buf.find(b"\n")
            if nl < 0:
                self._check_size()  # bytes before the banner are bounded like any message
                return out
            self.banner = buf[:nl].decode("utf-8", "replace").strip()
            pos = nl + 1
        # Each terminator is searched for once per feed and remembered: a multi-megabyte chunk stays linear
        # (searching from the start for every message, or deleting from the front each time, is quadratic).
        crlf = lf = -2
        while True:
            if -1 < crlf < pos or crlf == -2:
                crlf = buf.find(b"\r\n\r\n", pos)
            if -1 < lf < pos or lf == -2:
                lf = buf.find(b"\n\n", pos)
            if crlf < 0 and lf < 0:
                break
            if lf < 0 or (0 <= crlf < lf):
                end, nxt = crlf, crlf + 4
            else:
                end, nxt = lf, lf + 2
            msg = self._parse(bytes(buf[pos:end]))
            pos = nxt
            if msg:
                if msg.keys().isdisjoint(_AMI_KEYS) or msg.get("Event") == "":
                    self.unparseable += 1
                out.append(msg)
        del buf[:pos]
        self._check_size()
        return out

    def _check_size(self) -> None:
        if len(self._buf) > self._max:
            # No message boundary within the limit: drop what we have, keep reading.
            self.oversized += 1
            self._buf.clear()

    def _parse(self, raw: bytes) -> Headers:
        msg: Headers = {}
        text = raw.decode("utf-8", "replace")
        for line in text.split("\n"):
            line = line.rstrip("\r")
            if not line:
                continue
            key, colon, value = line.partition(":")
            if not colon or not key or " " in key.strip():
                self.bad_lines += 1
                lines = msg.setdefault("_lines", [])
                if isinstance(lines, list):
                    lines.append(line)
                continue
            key = key.strip()
            value = value[1:] if value.startswith(" ") else value
            value = value.rstrip()
            old = msg.get(key)
            if old is None:
                msg[key] = value
            elif isinstance(old, list):
                old.append(value)
            else:
                msg[key] = [old, value]
        return msg


def encode(headers: Mapping[str, str | list[str] | int | float] | Iterable[tuple[str, str]]) -> bytes:
    """Encode one message (an action or an event) in AMI wire format, ending with the blank line."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    lines: list[str] = []
    for key, value in items:
        if key.startswith("_"):
            continue
        if isinstance(value, list):
            lines.extend(f"{key}: {v}" for v in value)
        else:
            lines.append(f"{key}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def first(value: str | list[str] | None) -> str | None:
    """The first value of a header that may have been repeated."""
    if isinstance(value, list):
        return value[0] if value else None
    return value
