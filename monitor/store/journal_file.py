"""The journal's file: its format (JSON lines at logical byte offsets), opening and locking it, reading it back,
and ``<journal>.rejected``. The threads that append to it, sync it and truncate it are :mod:`monitor.store.journal`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

from monitor.files import open_private

log = logging.getLogger("qmon.store.journal")


@dataclass(frozen=True, slots=True)
class Entry:
    """An object appended at logical offsets ``[start, end)`` (``durable`` False: the write failed)."""

    obj: Any
    start: int
    end: int
    durable: bool = True


_FIELDS: dict[type, tuple[str, ...]] = {}


def _plain(o: Any) -> Any:
    """A dataclass instance as the dict of its fields, in order (json encodes what they hold); else ``str(o)``."""
    names = _FIELDS.get(type(o))
    if names is None:
        if not is_dataclass(o) or isinstance(o, type):
            return str(o)
        names = _FIELDS[type(o)] = tuple(f.name for f in fields(o))
    return {n: getattr(o, n) for n in names}


# json's C encoder walks the nested records itself and calls _plain once per dataclass: the same bytes as
# dumps(asdict(...)), without asdict's recursive deep copy (3x the time of the encoding).
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_plain)


def line_of(d: dict[str, Any]) -> bytes:
    """One journal line: compact JSON of ``d`` and a newline (lone surrogates kept, never an error).

    Dataclass instances in ``d`` are written as objects of their fields (as :func:`dataclasses.asdict`), any
    other value JSON does not know as its ``str``.
    """
    return (_ENCODER.encode(d) + "\n").encode("utf-8", "surrogatepass")


def fsync_dir(path: Path) -> None:
    """fsync the directory ``path`` (raises OSError)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # a rename is durable once its directory is
    finally:
        os.close(fd)


class JournalBusy(RuntimeError):
    """Another process holds the journal (a second daemon with the same ``journal_path``)."""


class JournalFile:
    """The WAL file ``path`` (0600) with its offsets; :class:`~monitor.store.journal.Journal` adds the threads."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.corrupt = 0  # unparseable lines (moved to .rejected)
        self._fd = -1  # opened by start() (or a write after close): a reading tool never creates the file
        # Shared with the threads; the lock is only ever held for a few assignments, never across I/O.
        self._lock = threading.Lock()
        self._io = threading.Lock()  # the file descriptor against compaction (reads, the swap)
        self._base = 0  # logical offset of the file's first byte
        self._end = self._file_size()  # logical offset after the last written (complete) line
        self._synced = self._end
        self.lines = self._count_lines()  # lines not yet committed (loop thread only)

    # -- set-up ------------------------------------------------------------------------------------------

    def _terminate_torn_line(self) -> None:
        # A crash in the middle of a write leaves a line without its newline: end it, so that it is moved to
        # .rejected on replay instead of swallowing the next appended entry.
        size = os.fstat(self._fd).st_size
        if size and os.pread(self._fd, 1, size - 1) != b"\n":
            os.write(self._fd, b"\n")
            with self._lock:
                self._end = self._synced = self._base + size + 1
            self.lines += 1

    def _lock_file(self) -> None:
        # Two qmon processes appending to and truncating one journal would corrupt it (and double records).
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JournalBusy(f"the journal {self.path} is in use by another qmon process "
                              "(give each daemon its own store.journal_path)") from None

    def _file_size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def _count_lines(self) -> int:
        if not self.path.is_file():  # missing, or a device (/dev/full in the disk-error test) that reads forever
            return 0
        try:
            with self.path.open("rb") as f:
                return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        except FileNotFoundError:
            return 0

    def _open(self) -> None:
        if self._fd >= 0:
            return
        self._fd = open_private(self.path, os.O_RDWR | os.O_APPEND)
        with contextlib.suppress(FileNotFoundError):  # a compaction a crash interrupted: the journal is intact
            self.path.with_name(self.path.name + ".compact").unlink()
        with self._lock:  # the file as it is now (a tool may have been started long after __init__)
            self._base = self._end - os.fstat(self._fd).st_size

    # -- reading back ------------------------------------------------------------------------------------

    def read(self, offset: int, end: int, max_entries: int) -> tuple[list[dict[str, Any]], int, int]:
        """Up to ``max_entries`` entries of ``[offset, end)``: (entries, offset after them, lines). Blocking I/O:
        run it in a thread. Unparseable lines go to ``.rejected`` (counted in ``corrupt``)."""
        out: list[dict[str, Any]] = []
        nlines = 0
        data = self._pread(offset, min(end - offset, max_entries * 8192))
        pos = 0
        while len(out) < max_entries:
            nl = data.find(b"\n", pos)
            if nl < 0:
                if pos == 0 and len(data) < end - offset:  # one line longer than the chunk: read it whole
                    data = self._pread(offset, end - offset)
                    continue
                break
            line, pos = data[pos:nl + 1], nl + 1
            nlines += 1
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict):
                    raise ValueError("not an object")
            except ValueError:
                self.corrupt += 1
                log.error("journal %s: unparseable line at byte %d moved to .rejected", self.path, offset + pos)
                self._reject_lines([line])
                continue
            out.append(entry)
        return out, offset + pos, nlines

    def _pread(self, offset: int, n: int) -> bytes:
        self._open()
        with self._io:
            with self._lock:
                base = self._base
            if offset < base:
                raise ValueError(f"journal offset {offset} already dropped (file starts at {base})")
            return os.pread(self._fd, n, offset - base)

    def close(self) -> None:
        """Close the file (after :meth:`stop`)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


    # -- .rejected ---------------------------------------------------------------------------------------

    def _reject_lines(self, lines: Iterable[bytes]) -> None:
        # Kept beside the journal (0600) for a human: nothing is ever silently thrown away.
        fd = open_private(self.path.with_name(self.path.name + ".rejected"), os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, b"".join(x if x.endswith(b"\n") else x + b"\n" for x in lines))
        finally:
            os.close(fd)

    def reject(self, entries: Iterable[dict[str, Any]]) -> None:
        """Append entries the database refused as they were to ``<journal>.rejected``."""
        self._reject_lines([line_of(e) for e in entries])
