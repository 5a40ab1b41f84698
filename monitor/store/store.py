"""The storage writer: every record through the write-ahead journal, then batched into the database.

``submit`` (the AMI read path) hands the record to the journal's writer thread and returns: no I/O, no await.
The thread appends it within ``WAL_INTERVAL_S`` (group commit) and passes it on to the writer task, which
writes batches into the database and then lets the journal truncate what the database holds. While the database
is down (refused, locked, silent past the deadline), records simply stay in the journal; they are replayed from
it, in order and idempotently (one row per pbx + Linkedid), when it is back or at the next start.
See docs/reliability.md for the guarantees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from monitor.core.records import CallRecord, MemberNote, OwedNote
from monitor.core.survey import SurveyResultRecord
from monitor.settings import StoreSettings
from monitor.store.engine import caller_hasher, head_revision, is_sqlite, make_engine, masked, schema_revision
from monitor.store.engine import upgrade as run_upgrade
from monitor.store.faults import bounded, describe
from monitor.store.journal import Entry, Journal
from monitor.store.owed import OwedItem
from monitor.store.reads import StoreReads
from monitor.store.rows import Item, MemberItem, item_from_json, item_to_json
from monitor.store.surveys import SurveyItem
from monitor.store.writer import BatchWriter

log = logging.getLogger("qmon.store")

# The exposure window: a record submitted longer ago than this (plus one write) is in the journal file.
WAL_INTERVAL_S = 0.02


class SchemaNotReady(RuntimeError):
    """The database is reachable but not migrated to this version's schema."""


class Store(StoreReads, BatchWriter):
    """Call records, member changes and survey results into SQL; never blocks the caller, never loses data.

    The read side (reports, API queries, repeat warm-up, cooldown, prune) is :class:`StoreReads`.
    """

    def __init__(self, settings: StoreSettings | None = None, clock: Callable[[], float] = time.time) -> None:
        self.settings = s = settings or StoreSettings()
        self.clock = clock
        self._overflow_max = max(100_000, 10 * s.queue_size)
        self.journal = Journal(s.journal_path, encode=item_to_json, interval_s=WAL_INTERVAL_S,
                               max_pending=self._overflow_max)
        self.hash = caller_hasher(s.hash_salt) if s.hash_callers else None
        self.engine: AsyncEngine | None = None
        self._wengine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._wsessions: async_sessionmaker[AsyncSession] | None = None
        # Journaled entries for the writer; past the bound they are read back from the journal file instead.
        self._queue: asyncio.Queue[Entry] = asyncio.Queue(maxsize=max(1, s.queue_size))
        self._volatile: list[Item] = []  # the journal could not take them (disk error): memory only
        self._stop = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._schema_ok = False
        self._down_since: float | None = None
        self._down_reason = ""
        self._retry_at = 0.0
        self._backoff = 0.0
        # One batch (a transaction) may take this long before the database counts as down.
        self.deadline_s = max(1.0, 1.5 * s.connect_timeout_s) + (s.sqlite_busy_timeout_s if is_sqlite(s.url) else 0)
        self.dropped: Counter[str] = Counter()  # reason -> items not queued in memory (read back from the journal)
        self._stats: dict[str, int] = {
            "batches": 0, "calls_written": 0, "members_written": 0, "duplicates": 0, "retries": 0,
            "journaled": 0, "journal_replayed": 0, "rejected": 0, "lost": 0, "surveys_written": 0,
            "surveys_attached": 0, "owed_written": 0,
        }

    # -- lifecycle -------------------------------------------------------------------------------------

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        assert self.engine is not None, "Store.start() first"
        return self.engine.dialect.name

    async def start(self, journal: bool = True) -> None:
        """Create the engines, start the journal threads, migrate (SQLite, or ``auto_migrate``).

        A dead database is not an error here: records wait in the journal. ``journal`` False: a tool that
        only reads or writes directly (``qmon report``, ``import-queue-log``) leaves the daemon's journal alone.
        Raises :class:`~monitor.store.journal.JournalBusy` when another process holds the journal.
        """
        s = self.settings
        self.engine = make_engine(s.url, s.connect_timeout_s, s.sqlite_busy_timeout_s)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # The writer's own engine: every statement bounded by the connect timeout (reports may run longer).
        self._wengine = (self.engine if is_sqlite(s.url) else
                         make_engine(s.url, s.connect_timeout_s, command_timeout_s=s.connect_timeout_s, pool_size=2))
        self._wsessions = async_sessionmaker(self._wengine, expire_on_commit=False)
        if journal:
            self.journal.start(asyncio.get_running_loop(), self._on_written)
        try:
            await bounded(self._ensure_schema(), self.deadline_s)
        except Exception as exc:
            self._mark_down(exc)

    async def _ensure_schema(self) -> None:
        if self._schema_ok:
            return
        assert self.engine is not None
        auto = self.settings.auto_migrate
        if auto is None:
            auto = is_sqlite(self.settings.url)
        rev = await (run_upgrade(self.engine) if auto else schema_revision(self.engine))
        if rev != head_revision():
            raise SchemaNotReady(f"database schema is at {rev or 'nothing'}, need {head_revision()}: "
                                 "run `qmon db upgrade`")
        self._schema_ok = True

    async def close(self) -> None:
        """Stop the journal and dispose of the engines (call :meth:`drain` first)."""
        if self.journal.running:
            await asyncio.to_thread(self.journal.stop)
        self.journal.close()
        for engine in {e for e in (self._wengine, self.engine) if e is not None}:
            await engine.dispose()

    # -- the read path side: never blocks, no I/O --------------------------------------------------------

    def prepare(self, record: CallRecord) -> CallRecord:
        """The record as stored: the caller number hashed when hashing is on."""
        if self.hash is None or record.caller is None:
            return record
        return replace(record, caller=self.hash(record.caller))

    def submit(self, record: CallRecord) -> None:
        """Queue a closed call record for storage (synchronous, never blocks, never loses it)."""
        self._put(self.prepare(record))

    def submit_member(self, note: MemberNote, pbx: str = "default") -> None:
        """Queue a member login/logout/pause/unpause for storage (synchronous, never blocks)."""
        self._put(MemberItem(pbx, note))

    def submit_survey(self, result: SurveyResultRecord, pbx: str = "default") -> None:
        """Queue a survey result of any status (AGI or callback) for storage (synchronous, never blocks).

        Idempotent on pbx + call + source + start; how it meets the call's own survey: :mod:`monitor.store.surveys`.
        """
        if self.hash is not None and result.caller is not None:
            result = replace(result, caller=self.hash(result.caller))
        self._put(SurveyItem(pbx, result))

    def submit_owed(self, note: OwedNote) -> None:
        """Queue an owed-call change (opened/closed) for storage (synchronous, never blocks; caller hashed if on)."""
        call = note.call
        if self.hash is not None:
            call = replace(call, caller=self.hash(call.caller) or "")
        self._put(OwedItem(replace(note, call=call)))

    def _put(self, item: Item) -> None:
        if self._closing:
            self._append_now([item])  # after drain: no read path left, write it through
        elif not self.journal.put(item):
            # The journal's writer thread has not written for 100k records (a hung disk): nothing else holds it.
            self._lost(1, "the journal writer is stuck")

    def _append_now(self, items: Sequence[Item]) -> None:
        try:
            self._stats["journaled"] += self.journal.append_now(items)
        except OSError as exc:
            self._lost(len(items), f"cannot write the journal ({describe(exc)})")

    def _lost(self, n: int, why: str) -> None:
        before = self._stats["lost"]
        self._stats["lost"] += n
        if before == 0 or before // 1000 != self._stats["lost"] // 1000:  # the first, then one line per 1000
            log.error("%d record(s) LOST (%d in all): %s (journal %s)", n, self._stats["lost"], why,
                      self.journal.path)

    def _on_written(self, entries: list[Entry]) -> None:
        """On the loop, after each journal write: queue the entries for the database."""
        durable = 0
        for e in entries:
            if not e.durable:
                if len(self._volatile) < self._overflow_max:
                    self._volatile.append(e.obj)
                else:
                    self._lost(1, "neither the journal nor memory can hold it")
                continue
            durable += 1
            try:
                self._queue.put_nowait(e)
            except asyncio.QueueFull:
                self.dropped["queue_full"] += 1  # in the journal: the writer reads it back from the file
        self.journal.added(durable)
        self._stats["journaled"] += durable

    # -- the writer task ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """The writer task: batches into the database until :meth:`drain`; what fails waits in the journal."""
        if self._stop.is_set():
            return  # drain() already ran (or runs) the final flush itself
        self._task = asyncio.current_task()
        while True:
            batch = await self._collect()
            if batch or self._volatile or (self.journal.pending and self.clock() >= self._retry_at):
                await self._flush(batch)
            if self._stop.is_set() and self._queue.empty():
                return

    async def _collect(self) -> list[Entry]:
        s = self.settings
        wait = 0.0 if self._stop.is_set() else s.flush_interval_s
        if self._retry_at > self.clock():
            wait = min(wait, max(0.01, self._retry_at - self.clock()))
        batch: list[Entry] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while len(batch) < s.batch_size:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - loop.time()
            if remaining <= 0 or self._stop.is_set():
                break
            stop = asyncio.ensure_future(self._stop.wait())
            get = asyncio.ensure_future(self._queue.get())
            done, _ = await asyncio.wait({get, stop}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if get in done:
                batch.append(get.result())
            else:
                get.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await get
                if get.done() and not get.cancelled():
                    batch.append(get.result())
        return batch

    async def _flush(self, batch: list[Entry]) -> None:
        if self._down_since is not None and self.clock() < self._retry_at:
            return  # still down: the batch is in the journal, replayed from there
        try:
            if self._down_since is not None:
                self._stats["retries"] += 1
            await bounded(self._ensure_schema(), self.deadline_s)
            await self._write_entries(batch)
            if self._volatile:
                items, self._volatile = self._volatile, []
                try:
                    await self.write_items(items)
                except BaseException:
                    self._volatile = items + self._volatile
                    raise
            self._mark_up()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._mark_down(exc)

    async def _write_entries(self, batch: list[Entry]) -> None:
        """Write the batch straight from memory when it continues the journal; else catch up from the file."""
        done, end = self.journal.position()
        run: list[Entry] = []
        cur, gap = done, False
        for e in batch:
            if e.end <= done:
                continue  # already in the database (read back from the file)
            if e.start != cur:
                gap = True  # entries were dropped from memory (queue full, outage): the file has them
                break
            run.append(e)
            cur = e.end
        if gap or (not run and done < end):
            await self._catch_up()
            return
        if run:
            await self.write_items([e.obj for e in run])
            self.journal.commit(cur, len(run))

    async def _catch_up(self) -> None:
        """Journal lines into the database in file order; idempotent, so a crash midway replays harmlessly."""
        while True:
            done, end = self.journal.position()
            if done >= end:
                return
            entries, off, nlines = await asyncio.to_thread(self.journal.read, done, end, self.settings.batch_size)
            if off <= done:
                return
            items: list[Item] = []
            for e in entries:
                try:
                    items.append(item_from_json(e))
                except (KeyError, TypeError, ValueError) as exc:
                    await asyncio.to_thread(self.journal.reject, [e])
                    self._lost(1, f"malformed journal entry ({type(exc).__name__}), kept in .rejected")
            if items:
                await self.write_items(items)
            self._stats["journal_replayed"] += len(items)
            self.journal.commit(off, nlines)

    def _mark_down(self, exc: BaseException) -> None:
        now = self.clock()
        reason = str(exc) if isinstance(exc, SchemaNotReady) else describe(exc)
        if self._down_since is None:
            self._down_since = now
            log.error("database %s unavailable (%s); records wait in the journal %s",
                      masked(self.settings.url), reason, self.journal.path)
        self._down_reason = reason
        self._backoff = min(self.settings.retry_max_s, max(self.settings.flush_interval_s, self._backoff * 2))
        self._retry_at = now + self._backoff

    def _mark_up(self) -> None:
        if self._down_since is not None:
            log.warning("database available again after %.1f s; journal replayed", self.clock() - self._down_since)
        self._down_since = None
        self._down_reason = ""
        self._backoff = 0.0
        self._retry_at = 0.0

    async def drain(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 (the daemon's API)
        """Flush the journal into the database within ``timeout`` s; the rest stays in the journal (replayed
        at the next start). True if everything is in the database."""
        timeout = self.settings.drain_timeout_s if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            if self.journal.running:  # everything submitted so far into the file (and on to the queue)
                await asyncio.to_thread(self.journal.flush, timeout)
            self._stop.set()
            task = self._task
            if task is not None and not task.done():
                done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - loop.time()))
                if not done:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if self.engine is not None and (self.journal.pending or self._volatile):
                # No writer task (never started, or gone): flush here, one last try even if it was down.
                self._retry_at = 0.0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._flush_all(), max(0.0, deadline - loop.time()))
        finally:
            self._closing = True
            if self.journal.running:
                await asyncio.to_thread(self.journal.stop)
            if self._volatile:
                items, self._volatile = self._volatile, []
                self._append_now(items)
        return not self.journal.pending and self._down_since is None

    async def _flush_all(self) -> None:
        while self.journal.pending or self._volatile:
            before = self.journal.position()
            batch: list[Entry] = []
            while not self._queue.empty() and len(batch) < self.settings.batch_size:
                batch.append(self._queue.get_nowait())
            await self._flush(batch)
            if self._down_since is not None or (self.journal.position() == before and not batch):
                return

    # -- state for /readyz and metrics --------------------------------------------------------------------

    async def writable(self) -> tuple[bool, str]:
        """(ok, reason) for /readyz: the database answers and has our schema."""
        if self.engine is None:
            return False, "store not started"
        if self._down_since is not None:
            return False, (f"database unavailable for {self.clock() - self._down_since:.0f} s "
                           f"({self._down_reason}); {self.journal.lines} record(s) journaled")
        engine = self.engine

        async def go() -> None:
            await self._ensure_schema()
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        try:
            await bounded(go(), 2.0)
        except Exception as exc:
            return False, f"database unavailable: {describe(exc)}"
        return True, "ok"

    @property
    def stats(self) -> dict[str, Any]:
        """Counters and gauges for metrics (see :func:`monitor.store.store_counters` for the issue-14 ones)."""
        return {
            **self._stats, "queue_depth": self._queue.qsize(), "overflow": len(self._volatile),
            "queue_size": self._queue.maxsize,
            "journal_bytes": self.journal.size, "journal_lines": self.journal.lines,
            "journal_write_errors": self.journal.write_errors,
            "dropped": sum(self.dropped.values()), "dropped_by_reason": dict(self.dropped),
            "db_up": self._down_since is None,
        }
