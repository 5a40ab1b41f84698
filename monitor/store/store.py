"""The storage writer: every record through the write-ahead journal, then batched into the database.

``submit`` (the AMI read path) hands the record to the journal's writer thread and returns: no I/O, no await.
The thread appends it within ``WAL_INTERVAL_S`` (group commit) and passes it on to the writer task, which
writes batches into the database and then lets the journal truncate what the database holds. While the database
is down (refused, locked, silent past the deadline), records simply stay in the journal; they are replayed from
it, in order and idempotently (one row per pbx + Linkedid), when it is back or at the next start. The writer task
and its batches are :mod:`monitor.store.writer`, the read side :mod:`monitor.store.reads`.
See docs/reliability.md for the guarantees.
"""

from __future__ import annotations

import asyncio
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
from monitor.store.engine import caller_hasher, head_revision, is_sqlite, make_engine, schema_revision
from monitor.store.engine import upgrade as run_upgrade
from monitor.store.faults import SchemaNotReady, bounded, describe
from monitor.store.journal import Entry, Journal
from monitor.store.owed import OwedItem
from monitor.store.reads import StoreReads
from monitor.store.rows import Item, MemberItem, item_entry
from monitor.store.surveys import SurveyItem, results_stored
from monitor.store.writer import WriterTask

log = logging.getLogger("qmon.store")

# The exposure window: a record submitted longer ago than this (plus one write) is in the journal file.
WAL_INTERVAL_S = 0.02


class Store(StoreReads, WriterTask):
    """Call records, member changes and survey results into SQL; never blocks the caller, never loses data.

    The read side (reports, API queries, repeat warm-up, cooldown, prune) is :class:`StoreReads`; the writer task
    (journal to database, outages, drain) is :class:`WriterTask`.
    """

    def __init__(self, settings: StoreSettings | None = None, clock: Callable[[], float] = time.time) -> None:
        self.settings = s = settings or StoreSettings()
        self.clock = clock
        self._overflow_max = max(100_000, 10 * s.queue_size)
        self.journal = Journal(s.journal_path, encode=item_entry, interval_s=WAL_INTERVAL_S,
                               max_pending=self._overflow_max)
        self.hash = caller_hasher(s.hash_salt) if s.hash_callers else None
        self.engine: AsyncEngine | None = None
        self._wengine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        # Journaled entries for the writer; past the bound they are read back from the journal file instead.
        self._queue: asyncio.Queue[Entry] = asyncio.Queue(maxsize=max(1, s.queue_size))
        self._volatile: list[Item] = []  # the journal could not take them (disk error): memory only
        self._stop = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._schema_ok = False
        self._results_waiting: bool | None = None
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
        if self._results_waiting is None:  # asked once, at start (else by the first batch)
            async with self.engine.connect() as conn:
                self._results_waiting = await results_stored(conn)
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
        """Counters and gauges for metrics (exported by ``_store_families`` in :mod:`monitor.web.collectors`)."""
        return {
            **self._stats, "queue_depth": self._queue.qsize(), "overflow": len(self._volatile),
            "queue_size": self._queue.maxsize,
            "journal_bytes": self.journal.size, "journal_lines": self.journal.lines,
            "journal_write_errors": self.journal.write_errors,
            "dropped": sum(self.dropped.values()), "dropped_by_reason": dict(self.dropped),
            "db_up": self._down_since is None,
        }
