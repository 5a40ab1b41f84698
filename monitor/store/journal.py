"""The write-ahead log (WAL): every record is appended here before the database sees it.

``put`` (the AMI read path) only appends to an in-memory list. A writer thread appends what has accumulated as
JSON lines every ``interval_s`` at most (group commit: one ``write`` for everything since the last one), then
hands the entries, with their byte offsets, to the event loop. A second thread ``fdatasync``s behind it, so a slow
disk never delays the ``write`` that protects against a process crash. Positions are logical byte offsets
(LSNs) that never go back. Once the database has committed everything (:meth:`Journal.commit`) the writer
thread truncates the file; under steady traffic, when more than ``COMPACT_BYTES`` are committed, it copies the
uncommitted tail to a new file and renames it over (so the file stays small without a quiet moment). On start,
whatever a crash left in the file is replayed (idempotently) before anything else.
The file itself (format, locking, reading back, ``.rejected``) is :mod:`monitor.store.journal_file`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from monitor.files import open_private
from monitor.store.journal_file import Entry, JournalBusy, JournalFile, fsync_dir, line_of

log = logging.getLogger("qmon.store.journal")

__all__ = ["COMPACT_BYTES", "Entry", "Journal", "JournalBusy"]


COMPACT_BYTES = 1 << 20


class Journal(JournalFile):
    """The WAL file ``path`` (0600) and its two threads; ``encode`` turns a queued object into a dict for JSON
    (dataclasses in it allowed: see :func:`~monitor.store.journal_file.line_of`).

    The file's format, opening/locking, reading back and ``.rejected``: :class:`JournalFile`.
    """

    def __init__(self, path: str | os.PathLike[str], encode: Callable[[Any], dict[str, Any]] = dict,
                 fsync: bool = True, interval_s: float = 0.05, max_pending: int = 100_000,
                 compact_bytes: int = COMPACT_BYTES) -> None:
        super().__init__(path)
        self.encode = encode
        self.fsync = fsync
        self.interval_s = interval_s
        self.max_pending = max_pending
        self.compact_bytes = compact_bytes
        self.compactions = 0
        self.write_errors = 0
        self._pending: list[Any] = []
        self._done = 0  # logical offset up to which the database has committed
        self._stop = False
        self._sync_stop = False
        self._dir_dirty = False
        self._wake = threading.Event()
        self._sync_wake = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._busy = False
        self._threads: list[threading.Thread] = []
        self._notify: Callable[[list[Entry]], None] | None = None

    # -- set-up ------------------------------------------------------------------------------------------

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
        lines = [line_of(self.encode(o)) for o in objs]
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
                        fsync_dir(self.path.parent)
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
