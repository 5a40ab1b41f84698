"""The local append-only JSONL journal: records that could not be written to the database yet."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger("qmon.store.journal")


class Journal:
    """Append-only JSONL file, read back in order from a byte offset and compacted once caught up.

    Every method is synchronous and never awaits, so on one event loop an append can never interleave with
    the read-remainder-and-truncate step of :meth:`consume`.
    """

    def __init__(self, path: str | os.PathLike[str], fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.corrupt = 0  # lines that could not be parsed (skipped, logged)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._terminate_torn_line()
        self.lines = self._count_lines()
        self.done_offset = 0  # bytes already replayed into the database in this process

    def _terminate_torn_line(self) -> None:
        # A crash mid-append leaves a line without its newline; end it so that it is rejected on replay
        # instead of swallowing the next appended entry.
        size = self.size
        if size == 0:
            return
        with self.path.open("rb+") as f:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                f.write(b"\n")

    def _count_lines(self) -> int:
        try:
            with self.path.open("rb") as f:
                return sum(1 for line in f if line.strip())
        except FileNotFoundError:
            return 0

    @property
    def size(self) -> int:
        """Current size in bytes."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    @property
    def pending(self) -> bool:
        """Whether lines wait to be replayed."""
        return self.size > self.done_offset

    def append(self, entries: Iterable[dict[str, Any]]) -> int:
        """Append entries as JSON lines (flushed and fsynced); returns how many."""
        data = "".join(json.dumps(e, separators=(",", ":"), default=str) + "\n" for e in entries)
        if not data:
            return 0
        with self.path.open("a", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
        n = data.count("\n")
        self.lines += n
        return n

    def read(self, offset: int, max_entries: int) -> tuple[list[dict[str, Any]], int, int]:
        """Up to ``max_entries`` complete lines from ``offset``: entries, the offset after them, lines read."""
        out: list[dict[str, Any]] = []
        nlines = 0
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return out, offset, 0
        with f:
            f.seek(offset)
            while len(out) < max_entries:
                line = f.readline()
                if not line or not line.endswith(b"\n"):
                    break  # EOF, or a line still being written / torn by a crash: retried next time
                offset += len(line)
                if not line.strip():
                    continue
                nlines += 1
                try:
                    entry = json.loads(line)
                    if not isinstance(entry, dict):
                        raise ValueError("not an object")
                except ValueError:
                    self.corrupt += 1
                    log.error("journal %s: skipping unparseable line at byte %d", self.path, offset - len(line))
                    self._reject(line)
                    continue
                out.append(entry)
        return out, offset, nlines

    def _reject(self, line: bytes) -> None:
        # Kept beside the journal for a human: nothing is ever silently thrown away.
        with self.path.with_name(self.path.name + ".rejected").open("ab") as f:
            f.write(line if line.endswith(b"\n") else line + b"\n")

    def reject(self, entries: Iterable[dict[str, Any]]) -> None:
        """Move entries the database refuses (bad data) to ``<journal>.rejected``."""
        for e in entries:
            self._reject(json.dumps(e, default=str).encode())

    def consume(self, offset: int, lines: int) -> None:
        """Mark everything before ``offset`` (``lines`` more lines) as stored; truncate once all of it is."""
        self.done_offset = max(self.done_offset, offset)
        self.lines = max(0, self.lines - lines)
        size = self.size
        if self.done_offset < size:
            return
        # Caught up: nothing was appended since the last read (no await in between), so empty the file.
        with self.path.open("wb") as f:
            if self.fsync:
                os.fsync(f.fileno())
        self.done_offset = 0
        self.lines = 0
