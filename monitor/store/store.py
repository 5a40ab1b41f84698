"""The storage writer: a bounded queue off the AMI read path, batched inserts, a journal when the DB is down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from monitor.core.records import CallRecord, MemberNote, OwedNote
from monitor.core.survey import SurveyResultRecord
from monitor.settings import StoreSettings
from monitor.store.engine import (
    caller_hasher,
    head_revision,
    is_sqlite,
    make_engine,
    masked,
    schema_revision,
)
from monitor.store.engine import upgrade as run_upgrade
from monitor.store.journal import Journal
from monitor.store.models import Call
from monitor.store.owed import OwedItem
from monitor.store.reads import StoreReads
from monitor.store.rows import Item, MemberItem, item_from_json, item_to_json, write_batch
from monitor.store.surveys import SurveyItem

log = logging.getLogger("qmon.store")


class SchemaNotReady(RuntimeError):
    """The database is reachable but not migrated to this version's schema."""


def _error_kind(exc: BaseException) -> str:
    """``data`` (this batch can never be written), ``outage`` (refused, reset, locked, timeout) or ``probe``."""
    if isinstance(exc, DataError | IntegrityError):
        return "data"
    if isinstance(exc, OperationalError | InterfaceError) or not isinstance(exc, StatementError):
        return "outage"
    if not isinstance(exc, DBAPIError):
        return "data"  # a value our types could not bind
    # Drivers report some bad values generically (asyncpg: "invalid input for query argument"): ask the DB.
    return "outage" if exc.connection_invalidated else "probe"


class Store(StoreReads):
    """Call records, member changes and survey results into SQL; never blocks the caller, never loses data.

    The read side (reports, API queries, repeat warm-up, cooldown, prune) is :class:`StoreReads`.
    """

    def __init__(self, settings: StoreSettings | None = None, clock: Callable[[], float] = time.time) -> None:
        self.settings = s = settings or StoreSettings()
        self.clock = clock
        self.journal = Journal(s.journal_path)
        self.hash = caller_hasher(s.hash_salt) if s.hash_callers else None
        self.engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=max(1, s.queue_size))
        self._inflight: list[Item] = []
        self._stop = asyncio.Event()
        self._closing = False
        # Items that found the queue full: kept in memory (bounded) and journaled in one batch by the writer
        # task, so the AMI callback never opens or fsyncs a file per record.
        self._overflow: list[Item] = []
        self._overflow_max = max(10_000, 10 * s.queue_size)
        self._task: asyncio.Task[None] | None = None
        self._schema_ok = False
        self._down_since: float | None = None
        self._down_reason = ""
        self._retry_at = 0.0
        self._backoff = 0.0
        self.dropped: Counter[str] = Counter()  # reason -> items not queued (queue_full: journaled instead)
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

    async def start(self) -> None:
        """Create the engine and migrate (SQLite, or ``auto_migrate``); a dead database is not an error here."""
        s = self.settings
        self.engine = make_engine(s.url, s.connect_timeout_s, s.sqlite_busy_timeout_s)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        try:
            await self._ensure_schema()
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
        """Dispose of the engine (call :meth:`drain` first)."""
        if self.engine is not None:
            await self.engine.dispose()

    # -- the read path side: never blocks ----------------------------------------------------------------

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
        if not self._closing:
            try:
                self._queue.put_nowait(item)
                return
            except asyncio.QueueFull:
                self.dropped["queue_full"] += 1
            if len(self._overflow) < self._overflow_max:
                self._overflow.append(item)
                return
            # Both bounds exceeded (the writer itself is stuck): a synchronous journal write beats losing data.
            log.warning("store overflow full: journaling on the read path")
        self._to_journal([item])

    def _journal_overflow(self) -> None:
        """The writer's side of the overflow: one journal append (one fsync) for all of it."""
        if self._overflow:
            items, self._overflow = self._overflow, []
            self._to_journal(items)

    def _to_journal(self, items: Sequence[Item]) -> None:
        if not items:
            return
        try:
            self._stats["journaled"] += self.journal.append(item_to_json(i) for i in items)
        except Exception:
            # Disk full or unwritable journal: the one case where data is really lost; loud and counted.
            self._stats["lost"] += len(items)
            self.dropped["journal_error"] += len(items)
            log.exception("cannot write %d record(s) to the journal %s: LOST", len(items), self.journal.path)

    # -- the writer task ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """The writer task: batches from the queue into the database (or the journal) until :meth:`drain`."""
        if self._stop.is_set():
            return  # drain() already ran (or runs) the final flush itself
        self._task = asyncio.current_task()
        try:
            while True:
                self._journal_overflow()
                batch = await self._collect()
                if batch or (self.journal.pending and self.clock() >= self._retry_at):
                    await self._flush(batch)
                if self._stop.is_set() and self._queue.empty():
                    return
        finally:
            self._spill()

    async def _collect(self) -> list[Item]:
        s = self.settings
        wait = s.flush_interval_s
        if self._retry_at > self.clock():
            wait = min(wait, max(0.01, self._retry_at - self.clock()))
        batch: list[Item] = []
        if self._stop.is_set():
            wait = 0.0
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

    async def _flush(self, batch: list[Item]) -> None:
        self._inflight = batch
        if self._down_since is not None and self.clock() < self._retry_at:
            self._to_journal(batch)  # still down: keep order by queueing behind the journal
            self._inflight = []
            return
        try:
            if self._down_since is not None:
                self._stats["retries"] += 1
            await self._ensure_schema()
            await self._replay_journal()
            if batch:
                await self.write_items(batch)
            self._mark_up()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._to_journal(batch)
            self._mark_down(exc)
        self._inflight = []

    async def write_items(self, items: Sequence[Item]) -> None:
        """Write one batch in one transaction (idempotent); bad data is isolated item by item and rejected."""
        assert self._sessions is not None
        try:
            async with self._sessions() as session, session.begin():
                res = await write_batch(session, self.dialect, items)
        except Exception as exc:
            kind = _error_kind(exc)
            if kind == "outage" or (kind == "probe" and not await self._probe()):
                raise
            if len(items) == 1:
                log.error("database refused a record (moved to %s.rejected): %s", self.journal.path, exc)
                self._stats["rejected"] += 1
                self.journal.reject(item_to_json(i) for i in items)
                return
            for it in items:
                await self.write_items([it])
            return
        self._stats["batches"] += 1
        self._stats["calls_written"] += res.calls
        self._stats["members_written"] += res.members
        self._stats["surveys_written"] += res.surveys
        self._stats["surveys_attached"] += res.attached
        self._stats["duplicates"] += res.duplicates
        self._stats["owed_written"] += res.owed

    async def _probe(self) -> bool:
        """Whether the database answers a query on our schema (then a failed batch was bad data)."""
        assert self.engine is not None
        try:
            async with asyncio.timeout(2.0), self.engine.connect() as conn:
                await conn.execute(select(Call.id).limit(0))
        except Exception:
            return False
        return True

    async def _replay_journal(self) -> None:
        """Journal lines into the database, in file order; idempotent, so a crash midway replays harmlessly."""
        while self.journal.pending:
            entries, end, nlines = self.journal.read(self.journal.done_offset, self.settings.batch_size)
            if end == self.journal.done_offset:
                break  # only a torn line left at the end
            items: list[Item] = []
            for e in entries:
                try:
                    items.append(item_from_json(e))
                except (KeyError, TypeError, ValueError) as exc:
                    log.error("journal: skipping malformed entry (%s); kept in .rejected", exc)
                    self._stats["rejected"] += 1
                    self.journal.reject([e])
            if items:
                await self.write_items(items)
            self._stats["journal_replayed"] += len(items)
            self.journal.consume(end, nlines)

    def _mark_down(self, exc: BaseException) -> None:
        now = self.clock()
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
        if self._down_since is None:
            self._down_since = now
            log.error("database %s unavailable (%s); records go to the journal %s",
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

    def _spill(self) -> None:
        """Whatever is in flight or queued goes to the journal (shutdown, cancellation)."""
        items = list(self._inflight)
        self._inflight = []
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        items += self._overflow
        self._overflow = []
        self._to_journal(items)

    async def drain(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 (the daemon's API)
        """Flush the queue (and the journal) within ``timeout``; the rest goes to the journal. True if all in DB."""
        timeout = self.settings.drain_timeout_s if timeout is None else timeout
        self._stop.set()
        task = self._task
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            if task is not None and not task.done():
                done, _ = await asyncio.wait({task}, timeout=timeout)
                if not done:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            self._journal_overflow()
            if self.engine is not None and (not self._queue.empty() or self.journal.pending):
                # No writer task (never started, or gone): flush here, one last try even if it was down.
                self._retry_at = 0.0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._flush_all(), max(0.0, deadline - loop.time()))
        finally:
            self._closing = True
            self._spill()
        return self._queue.empty() and not self.journal.pending and self._down_since is None

    async def _flush_all(self) -> None:
        while not self._queue.empty() or self.journal.pending:
            batch: list[Item] = []
            while not self._queue.empty() and len(batch) < self.settings.batch_size:
                batch.append(self._queue.get_nowait())
            await self._flush(batch)
            if self._down_since is not None:
                return

    # -- state for /readyz and metrics --------------------------------------------------------------------

    async def writable(self) -> tuple[bool, str]:
        """(ok, reason) for /readyz: the database answers and has our schema."""
        if self.engine is None:
            return False, "store not started"
        if self._down_since is not None:
            return False, (f"database unavailable for {self.clock() - self._down_since:.0f} s "
                           f"({self._down_reason}); {self.journal.lines} record(s) journaled")
        try:
            async with asyncio.timeout(2.0):
                await self._ensure_schema()
                async with self.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        except Exception as exc:
            return False, f"database unavailable: {type(exc).__name__}: {str(exc)[:200]}"
        return True, "ok"

    @property
    def stats(self) -> dict[str, Any]:
        """Counters and gauges for metrics (queue depth, batches, retries, journal size/lines, dropped)."""
        return {
            **self._stats, "queue_depth": self._queue.qsize(), "overflow": len(self._overflow),
            "queue_size": self._queue.maxsize,
            "journal_bytes": self.journal.size, "journal_lines": self.journal.lines,
            "dropped": sum(self.dropped.values()), "dropped_by_reason": dict(self.dropped),
            "db_up": self._down_since is None,
        }
