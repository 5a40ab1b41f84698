"""The write-ahead log (WAL): every record is appended here before the database sees it.

``put`` (the AMI read path) only appends to an in-memory list. A writer thread appends what has accumulated as
JSON lines every ``interval_s`` at most (group commit: one ``write`` for everything since the last one), then
hands the entries, with their byte offsets, to the event loop. A second thread ``fdatasync``s behind it, so a slow
disk never delays the ``write`` that protects against a process crash. Positions are logical byte offsets
(LSNs) that never go back. Once the database has committed everything (:meth:`Journal.commit`) the writer
thread truncates the file; under steady traffic, when more than ``COMPACT_BYTES`` are committed, it copies the
uncommitted tail to a new file and renames it over (so the file stays small without a quiet moment). On start,
whatever a crash left in the file is replayed (idempotently) before anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.files import open_private

log = logging.getLogger("qmon.store.journal")


COMPACT_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Entry:
    """An object appended at logical offsets ``[start, end)`` (``durable`` False: the write failed)."""

    obj: Any
    start: int
    end: int
    durable: bool = True


def _line(d: dict[str, Any]) -> bytes:
    return (json.dumps(d, separators=(",", ":"), default=str) + "\n").encode("utf-8", "surrogatepass")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # a rename is durable once its directory is
    finally:
        os.close(fd)


class JournalBusy(RuntimeError):
    """Another process holds the journal (a second daemon with the same ``journal_path``)."""


class Journal:
    """The WAL file ``path`` (0600) and its two threads; ``encode`` turns a queued object into a JSON dict."""

    def __init__(self, path: str | os.PathLike[str], encode: Callable[[Any], dict[str, Any]] = dict,
                 fsync: bool = True, interval_s: float = 0.05, max_pending: int = 100_000,
                 compact_bytes: int = COMPACT_BYTES) -> None:
        self.path = Path(path)
        self.encode = encode
        self.fsync = fsync
        self.interval_s = interval_s
        self.max_pending = max_pending
        self.compact_bytes = compact_bytes
        self.compactions = 0
        self.corrupt = 0  # unparseable lines (moved to .rejected)
        self.write_errors = 0
        self._fd = -1  # opened by start() (or a write after close): a reading tool never creates the file
        # Shared with the threads; the lock is only ever held for a few assignments, never across I/O.
        self._lock = threading.Lock()
        self._pending: list[Any] = []
        self._io = threading.Lock()  # the file descriptor against compaction (reads, the swap)
        self._base = 0  # logical offset of the file's first byte
        self._end = self._file_size()  # logical offset after the last written (complete) line
        self._done = 0  # logical offset up to which the database has committed
        self._synced = self._end
        self._stop = False
        self._sync_stop = False
        self._dir_dirty = False
        self._wake = threading.Event()
        self._sync_wake = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._busy = False
        self._threads: list[threading.Thread] = []
        self._notify: Callable[[list[Entry]], None] | None = None
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

    def start(self, loop: asyncio.AbstractEventLoop, on_written: Callable[[list[Entry]], None]) -> None:
        """Start the writer and fsync threads; ``on_written(entries)`` is called on ``loop`` after each write."""
        if self._threads:
            return
        self._open()
        self._lock_file()
        self._terminate_torn_line()

        def notify(entries: list[Entry]) -> None:
            try:
                loop.call_soon_threadsafe(on_written, entries)
            except RuntimeError:  # the loop is gone (shutdown): the entries are in the file, replayed next start
                pass

        self._notify = notify
        self._threads = [threading.Thread(target=self._write_loop, name="qmon-wal", daemon=True),
                         threading.Thread(target=self._sync_loop, name="qmon-wal-sync", daemon=True)]
        for t in self._threads:
            t.start()
        self._wake.set()

    @property
    def running(self) -> bool:
        """Whether the threads run (between :meth:`start` and :meth:`stop`)."""
        return bool(self._threads)

    # -- the read path: no I/O ---------------------------------------------------------------------------

    def put(self, obj: Any) -> bool:
        """Queue ``obj`` for the next group write (thread-safe, never blocks); False if the bound is reached."""
        with self._lock:
            if len(self._pending) >= self.max_pending:
                return False
            self._pending.append(obj)
            first = len(self._pending) == 1
        if first:
            self._wake.set()
        return True

    # -- the writer thread -------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        last = 0.0
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                stopping = self._stop
            if not stopping:
                # Group commit: at most one write per interval; what arrives meanwhile joins it.
                delay = last + self.interval_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            last = time.monotonic()
            self._cycle()
            with self._lock:
                if self._stop and not self._pending:
                    break

    def _cycle(self) -> None:
        with self._lock:
            objs, self._pending = self._pending, []
            self._busy = True
        try:
            if objs:
                entries = self._write(objs)
                if self._notify is not None:
                    self._notify(entries)
            self._maybe_truncate()  # after the write: what waits for it is never delayed by the disk's metadata
        except Exception:  # a bug here must not kill the thread silently
            log.exception("journal writer failed")
        finally:
            with self._lock:
                self._busy = False
                self._idle.notify_all()

    def _write(self, objs: Sequence[Any]) -> list[Entry]:
        """Append ``objs`` in one write; on a disk error they are returned not ``durable``."""
        lines = [_line(self.encode(o)) for o in objs]
        with self._lock:
            base, start = self._base, self._end
        data = b"".join(lines)
        try:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            self.write_errors += 1
            if self.write_errors == 1 or self.write_errors % 1000 == 0:
                log.error("cannot append to the journal %s (%s, %d time(s)): %d record(s) only in memory",
                          self.path, type(exc).__name__, self.write_errors, len(objs))
            try:
                os.ftruncate(self._fd, start - base)  # no torn line in front of the next append
            except OSError:
                pass
            return [Entry(o, 0, 0, durable=False) for o in objs]
        out, pos = [], start
        for o, line in zip(objs, lines, strict=True):
            out.append(Entry(o, pos, pos + len(line)))
            pos += len(line)
        with self._lock:
            self._end = pos
        self._sync_wake.set()
        return out

    def _maybe_truncate(self) -> None:
        """Drop what the database holds: truncate when it holds everything, else compact past COMPACT_BYTES."""
        with self._lock:
            base, done, end = self._base, self._done, self._end
        if done <= base:
            return
        if done >= end:
            with self._io:
                os.ftruncate(self._fd, 0)
        elif done - base >= self.compact_bytes:
            self._compact(base, done, end)
            self.compactions += 1
        else:
            return
        with self._lock:
            self._base = done
            if done >= end:
                self._synced = max(self._synced, done)

    def _compact(self, base: int, done: int, end: int) -> None:
        # The uncommitted tail into a new file (0600), renamed over the journal. No fsync here (this thread must
        # never wait for the disk): the fsync thread syncs the new file and the directory right after.
        tmp = self.path.with_name(self.path.name + ".compact")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = open_private(tmp, os.O_RDWR | os.O_APPEND)
        try:
            tail = os.pread(self._fd, end - done, done - base)
            os.write(fd, tail)
            with self._io:
                os.replace(tmp, self.path)
                old, self._fd = self._fd, fd
            os.close(old)
        except BaseException:
            os.close(fd)
            raise
        with self._lock:
            self._dir_dirty = True
        self._sync_wake.set()

    # -- the fsync thread --------------------------------------------------------------------------------

    def _sync_loop(self) -> None:
        while True:
            self._sync_wake.wait()
            self._sync_wake.clear()
            with self._lock:
                end, synced, stop, dir_dirty = self._end, self._synced, self._sync_stop, self._dir_dirty
                self._dir_dirty = False
            if self.fsync and (end != synced or dir_dirty):
                try:
                    # A duplicate of the descriptor, so that neither a truncation nor a compaction's swap
                    # waits for this fsync (the writer thread must never wait for the disk).
                    with self._io:
                        fd = os.dup(self._fd)
                    try:
                        os.fdatasync(fd)
                    finally:
                        os.close(fd)
                    if dir_dirty:
                        _fsync_dir(self.path.parent)
                except OSError as exc:
                    log.error("cannot fsync the journal %s (%s)", self.path, type(exc).__name__)
            with self._lock:
                self._synced = end
            if stop:
                return

    # -- the event loop's side ---------------------------------------------------------------------------

    def position(self) -> tuple[int, int]:
        """(logical offset committed to the database, logical offset written)."""
        with self._lock:
            return self._done, self._end

    @property
    def size(self) -> int:
        """Bytes in the file (0 once everything is in the database and the writer truncated it)."""
        with self._lock:
            return self._end - self._base

    @property
    def pending(self) -> bool:
        """Whether written lines wait for the database."""
        with self._lock:
            return self._done < self._end

    def commit(self, offset: int, lines: int) -> None:
        """The database holds everything before logical ``offset`` (``lines`` more lines than before)."""
        with self._lock:
            if offset <= self._done:
                return
            self._done = offset
            wake = self._done >= self._end or self._done - self._base >= self.compact_bytes
        self.lines = max(0, self.lines - lines)
        if wake:
            self._wake.set()  # the writer thread truncates or compacts

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

    def added(self, n: int) -> None:
        """Count ``n`` lines written (called on the loop with each batch of entries)."""
        self.lines += n

    def flush(self, timeout: float) -> bool:
        """Block until everything put so far is written (True) or ``timeout`` s pass. Run it in a thread."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._lock:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or not self._threads:
                    return False
                self._idle.wait(min(left, 0.05))
                self._wake.set()
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued, truncate if all is committed, fsync, stop the threads, close the file.
        Blocking: run it in a thread."""
        writer, syncer = [*self._threads, None, None][:2]
        with self._lock:
            self._stop = True
        self._wake.set()
        if writer is not None:
            writer.join(timeout)
        with self._lock:
            self._sync_stop = True
        self._sync_wake.set()
        if syncer is not None:
            syncer.join(timeout)
        self._threads = []
        self._notify = None
        with self._lock:
            rest, self._pending = self._pending, []
        self.append_now(rest)
        self.close()  # releases the lock: the next daemon (or a test's next store) may take the journal

    def append_now(self, objs: Sequence[Any]) -> int:
        """Write ``objs`` synchronously (after :meth:`stop`: shutdown, no read path left); returns how many."""
        self._open()  # after close(): the file again, for these few
        self._maybe_truncate()
        if not objs:
            return 0
        entries = self._write(objs)
        if entries and not entries[0].durable:
            raise OSError(f"cannot append to the journal {self.path}")
        if self.fsync:
            os.fdatasync(self._fd)
        self.lines += len(entries)
        return len(entries)

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
        self._reject_lines([_line(e) for e in entries])
