"""The benchmark stream: every recorded transcript, ids renumbered and clocks shifted per repetition.

The base is each capture of ``tests/fixtures`` (Asterisk 22) and ``tests/fixtures/transcripts`` (more
Asterisk 22 scenarios, and all of them again on Asterisk 20), after its banner and Login response, with its
``Timestamp`` s moved so the captures follow one another. Repetition ``r`` appends ``-r`` to every
Uniqueid/Linkedid (so each repetition is new calls for the tracker) and moves every Timestamp on by ``r``
times the span of the base (so the tracker's clock, stale sweep and repeat-caller windows see time pass).
A repetition is produced from a template in a few milliseconds: two million events never sit in memory.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
_HOLE = re.compile(rb"^(?:([A-Za-z]*(?:niqueid|inkedid): [0-9.]+)|Timestamp: ([0-9.]+))\r$", re.M)
_GAP_S = 60.0  # between two captures


def _is_event_stream(path: Path) -> bool:
    """A capture of calls (not the answer to one action, such as a recorded QueueStatus list)."""
    raw = path.read_bytes()
    return b"Event: Newchannel" in (gzip.decompress(raw) if path.suffix == ".gz" else raw)


def captures() -> list[Path]:
    """Every raw capture of an event stream the benchmarks (and tests/test_wire_fast.py) use."""
    paths = sorted(FIXTURES.glob("*.ami")) + sorted((FIXTURES / "transcripts").glob("*/*.ami.gz"))
    return [p for p in paths if _is_event_stream(p)]


def capture_body(path: Path) -> bytes:
    """A capture's messages after its banner and its Login response."""
    raw = path.read_bytes()
    raw = gzip.decompress(raw) if path.suffix == ".gz" else raw
    raw = raw[raw.index(b"\n") + 1:]
    if raw.startswith(b"Response:"):
        raw = raw[raw.index(b"\r\n\r\n") + 4:]
    return raw


class Stream:
    """A template of the base; :meth:`rep` renders repetition ``r`` as wire bytes."""

    def __init__(self, paths: list[Path] | None = None) -> None:
        self._pieces: list[bytes] = []
        self._holes: list[bytes | float] = []  # an id line (gets the suffix) or a Timestamp (base-relative s)
        cursor = 0.0
        static: list[bytes] = []
        for path in paths if paths is not None else captures():
            body = capture_body(path)
            stamps = [float(m.group(2)) for m in _HOLE.finditer(body) if m.group(2)]
            t0 = min(stamps, default=0.0)
            pos = 0
            for m in _HOLE.finditer(body):
                static.append(body[pos:m.start()])
                self._pieces.append(b"".join(static))
                static = []
                self._holes.append(m.group(1) if m.group(1) else float(m.group(2)) - t0 + cursor)
                pos = m.end() - 1  # keep the \r
            static.append(body[pos:])
            cursor += (max(stamps, default=0.0) - t0) + _GAP_S
        self._tail = b"".join(static)
        self.span_s = cursor
        self.epoch = 1_800_000_000.0
        base = self.rep(0)
        self.events_per_rep = base.count(b"\r\n\r\nEvent: ") + base.startswith(b"Event: ")
        self.bytes_per_rep = len(base)

    def rep(self, r: int) -> bytes:
        """Repetition ``r`` of the base (ids suffixed ``-r``, clock moved on by ``r`` spans)."""
        suffix = b"-%d" % r
        t0 = self.epoch + r * self.span_s
        out: list[bytes] = []
        for piece, hole in zip(self._pieces, self._holes, strict=True):
            out.append(piece)
            if isinstance(hole, bytes):
                out.append(hole + suffix)
            else:
                out.append(b"Timestamp: %.6f" % (t0 + hole))
        out.append(self._tail)
        return b"".join(out)

    def reps(self, count: int) -> Iterator[bytes]:
        """Repetitions 0 .. count-1."""
        for r in range(count):
            yield self.rep(r)

    def messages(self, count: int) -> list[bytes]:
        """``count`` repetitions as a list of raw messages, each with its terminator (for the test AMI server)."""
        out: list[bytes] = []
        for data in self.reps(count):
            parts = data.split(b"\r\n\r\n")
            out += [p + b"\r\n\r\n" for p in parts[:-1]]
        return out

    def write(self, path: Path, count: int) -> int:
        """Write banner + ``count`` repetitions as an ``.ami`` capture; returns its size in bytes."""
        size = len(BANNER)
        with path.open("wb") as f:
            f.write(BANNER)
            for data in self.reps(count):
                size += f.write(data)
        return size
