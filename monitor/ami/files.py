"""Recorded AMI streams: ``.ami`` raw wire captures and ``.jsonl`` captures, either optionally gzipped."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, cast

from monitor.ami.wire import Headers, WireParser
from monitor.core.normalize import old_ami_banner

CHUNK = 64 * 1024


class CaptureError(Exception):
    """A capture file cannot be read (missing, unknown format, not a capture)."""


def _open(path: Path) -> IO[bytes]:
    try:
        f: IO[bytes] = path.open("rb")
    except OSError as exc:
        raise CaptureError(f"{path}: cannot open: {exc.strerror}") from None
    if f.read(2) == b"\x1f\x8b":
        f.close()
        gz = cast(IO[bytes], gzip.open(path, "rb"))
        return gz
    f.seek(0)
    return f


def capture_kind(path: Path) -> str:
    """``ami`` or ``jsonl`` from the file name (``.gz`` allowed)."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    if name.endswith(".ami"):
        return "ami"
    if name.endswith(".jsonl"):
        return "jsonl"
    raise CaptureError(f"{path}: unknown capture format (expected .ami, .jsonl, optionally .gz)")


def read_capture(path: Path, stats: dict[str, int] | None = None) -> Iterator[tuple[Headers, float | None]]:
    """Yield (headers, receive time or None) for every message of a capture, in wire order."""
    kind = capture_kind(path)
    stats = stats if stats is not None else {}
    with _open(path) as f:
        try:
            if kind == "ami":
                parser = WireParser(expect_banner=True)
                while chunk := f.read(CHUNK):
                    msgs = parser.feed(chunk)
                    if parser.banner is not None and old_ami_banner(parser.banner):
                        raise CaptureError(f"{path}: banner {parser.banner!r} is Asterisk 11 or older (AMI 1.x): "
                                           "qmon supports the AMI 2 event set of Asterisk 13 and later")
                    for msg in msgs:
                        yield msg, None
                for msg in parser.feed(b"\r\n\r\n"):
                    yield msg, None
                stats["bad_lines"] = stats.get("bad_lines", 0) + parser.bad_lines
            else:
                for line in f:
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        stats["bad_json"] = stats.get("bad_json", 0) + 1
                        continue
                    if not isinstance(obj, dict) or "_banner" in obj:
                        continue
                    recv = obj.pop("_recv", None)
                    rec: Headers = {
                        str(k): (v if isinstance(v, str) else [str(x) for x in v] if isinstance(v, list) else str(v))
                        for k, v in obj.items()
                    }
                    yield rec, float(recv) if isinstance(recv, int | float) else None
        except (OSError, EOFError) as exc:
            raise CaptureError(f"{path}: read error: {exc}") from None
