"""Recorded AMI streams: ``.ami`` raw wire captures and ``.jsonl`` captures, either optionally gzipped."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, cast

from monitor.ami.wire import Headers, Selection, WireParser
from monitor.core.normalize import old_ami_banner
from monitor.core.preread import PreRead

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


def _chunks(f: IO[bytes]) -> Iterator[bytes]:
    """The file in CHUNK pieces, then a terminator for a last message without its blank line."""
    while chunk := f.read(CHUNK):
        yield chunk
    yield b"\r\n\r\n"


def capture_kind(path: Path) -> str:
    """``ami`` or ``jsonl`` from the file name (``.gz`` allowed)."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    if name.endswith(".ami"):
        return "ami"
    if name.endswith(".jsonl"):
        return "jsonl"
    raise CaptureError(f"{path}: unknown capture format (expected .ami, .jsonl, optionally .gz)")


def read_capture(path: Path, stats: dict[str, int] | None = None, select: Selection | None = None,
                 ) -> Iterator[tuple[Headers | PreRead, float | None]]:
    """Yield (headers, clock or None) for every message of a capture, in wire order.

    The clock is the receive time (``.jsonl``), or, for an ``.ami`` message read with a ``select`` that has
    ``gap_clock``, the last ``Timestamp`` of the events dropped just before it when it has none itself.
    ``select`` (``.ami`` only) leaves out the events it does not keep; they are counted in
    ``stats["dropped_events"]`` once the capture is read to its end. A ``defer`` selection hands ``Newexten`` over as
    :class:`~monitor.core.preread.PreRead` (for :meth:`monitor.core.ingest.Ingest.feed`).
    """
    kind = capture_kind(path)
    stats = stats if stats is not None else {}
    with _open(path) as f:
        try:
            if kind == "ami":
                parser = WireParser(expect_banner=True, select=select)
                clocked = select is not None and select.gap_clock
                for chunk in _chunks(f):
                    msgs = parser.feed(chunk)
                    if parser.banner is not None and old_ami_banner(parser.banner):
                        raise CaptureError(f"{path}: banner {parser.banner!r} is Asterisk 11 or older (AMI 1.x): "
                                           "qmon supports the AMI 2 event set of Asterisk 13 and later")
                    if clocked:
                        yield from zip(msgs, parser.gap_clocks, strict=True)
                    else:
                        for msg in msgs:
                            yield msg, None
                stats["bad_lines"] = stats.get("bad_lines", 0) + parser.bad_lines
                stats["dropped_events"] = stats.get("dropped_events", 0) + parser.dropped_events
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
