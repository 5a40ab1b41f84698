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


class WireParser:
    """Turns AMI bytes into header dicts; duplicate keys become lists, as in the ``.jsonl`` captures."""

    def __init__(self, expect_banner: bool = True, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._buf = bytearray()
        self._expect_banner = expect_banner
        self._max = max_message_bytes
        self.banner: str | None = None
        self.oversized = 0
        self.bad_lines = 0

    def feed(self, data: bytes) -> list[Headers]:
        """Add bytes; return every message completed by them, in order."""
        self._buf += data
        out: list[Headers] = []
        if self._expect_banner and self.banner is None:
            nl = self._buf.find(b"\n")
            if nl < 0:
                return out
            self.banner = self._buf[:nl].decode("utf-8", "replace").strip()
            del self._buf[: nl + 1]
        while True:
            end, sep = self._find_end()
            if end < 0:
                if len(self._buf) > self._max:
                    # No message boundary within the limit: drop what we have, keep reading.
                    self.oversized += 1
                    self._buf.clear()
                return out
            raw = bytes(self._buf[:end])
            del self._buf[: end + sep]
            msg = self._parse(raw)
            if msg:
                out.append(msg)

    def _find_end(self) -> tuple[int, int]:
        crlf = self._buf.find(b"\r\n\r\n")
        lf = self._buf.find(b"\n\n")
        if crlf < 0 and lf < 0:
            return -1, 0
        if lf < 0 or (0 <= crlf < lf):
            return crlf, 4
        return lf, 2

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
