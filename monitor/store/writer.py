"""The store's write side: the writer task (journal to database, outages, drain) and its batches (one transaction
each, bounded in time; bad rows isolated, never lost)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.settings import StoreSettings
from monitor.store.engine import masked
from monitor.store.faults import SchemaNotReady, bounded, describe, error_kind
from monitor.store.journal import Entry, Journal
from monitor.store.models import Call
from monitor.store.rows import Item, WriteResult, item_entry, item_from_json, write_batch
from monitor.store.surveys import results_stored

log = logging.getLogger("qmon.store")


class BatchWriter:
    """Writes batches (a mixin: :class:`~monitor.store.store.Store` sets these attributes)."""

    journal: Journal
    deadline_s: float
    _stats: dict[str, int]
    _wengine: AsyncEngine | None
    # Whether a survey result may be stored ahead of its call (None: not asked yet). Results are written by
    # this process only (its survey server, for its own PBXs): once none is stored, none appears but through
    # a batch here, and a new call need not look for one (a SELECT per batch saved where surveys are off).
    _results_waiting: bool | None

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        raise NotImplementedError

    def _lost(self, n: int, why: str) -> None:
        raise NotImplementedError

    async def write_items(self, items: Sequence[Item]) -> None:
        """Write one batch in one transaction (idempotent). A batch with bad data is retried row by row; a row
        still refused is stored with its free-text fields blanked and numbers clamped (``rejected``), its
        original kept in ``<journal>.rejected``; if even that is refused it is ``lost`` (still in .rejected)."""
        try:
            res = await self._transaction(items, scrub=False)
        except Exception as exc:
            if error_kind(exc) == "outage" or (error_kind(exc) == "probe" and not await self._probe()):
                raise
            if len(items) > 1:
                for it in items:
                    await self.write_items([it])
                return
            scrubbed = await self._store_scrubbed(items[0], exc)
            if scrubbed is not None:
                self._account(scrubbed)
            return
        self._account(res)

    async def _store_scrubbed(self, item: Item, exc: BaseException) -> WriteResult | None:
        # Never the row's values in the log: SQLAlchemy's message carries the SQL parameters.
        await asyncio.to_thread(self.journal.reject, [item_entry(item)])
        try:
            res = await self._transaction([item], scrub=True)
        except Exception as exc2:
            if error_kind(exc2) == "outage":
                raise
            self._lost(1, f"the database refused a record even with its text blanked ({describe(exc2)}); "
                          "kept in .rejected")
            return None
        self._stats["rejected"] += 1
        log.error("the database refused a record (%s): stored with free-text fields blanked; the original is in "
                  "%s.rejected", describe(exc), self.journal.path.name)
        return res

    async def _transaction(self, items: Sequence[Item], scrub: bool) -> WriteResult:
        assert self._wengine is not None
        engine = self._wengine

        async def go() -> WriteResult:
            # A Core connection, not an ORM session: the batch is Core statements only (monitor.store.statements).
            async with engine.begin() as conn:
                if self._results_waiting is None:
                    self._results_waiting = await results_stored(conn)
                return await write_batch(conn, self.dialect, items, scrub=scrub, adopt=self._results_waiting)

        return await bounded(go(), self.deadline_s)

    def _account(self, res: WriteResult) -> None:
        self._stats["batches"] += 1
        self._stats["calls_written"] += res.calls
        self._stats["members_written"] += res.members
        self._stats["surveys_written"] += res.surveys
        self._stats["surveys_attached"] += res.attached
        self._stats["duplicates"] += res.duplicates
        self._stats["owed_written"] += res.owed
        if res.surveys:
            self._results_waiting = True

    async def _probe(self) -> bool:
        """Whether the database answers a query on our schema (then a failed batch was bad data)."""
        assert self._wengine is not None
        engine = self._wengine

        async def go() -> None:
            async with engine.connect() as conn:
                await conn.execute(select(Call.id).limit(0))

        try:
            await bounded(go(), min(2.0, self.deadline_s))
        except Exception:
            return False
        return True


class WriterTask(BatchWriter):
    """The writer task: journaled entries into the database in batches, waiting out outages (a mixin, like
    :class:`BatchWriter`: :class:`~monitor.store.store.Store` sets these attributes)."""

    settings: StoreSettings
    clock: Callable[[], float]
    engine: AsyncEngine | None
    _queue: asyncio.Queue[Entry]
    _volatile: list[Item]
    _stop: asyncio.Event
    _closing: bool
    _task: asyncio.Task[None] | None
    _down_since: float | None
    _down_reason: str
    _retry_at: float
    _backoff: float

    async def _ensure_schema(self) -> None:
        raise NotImplementedError

    def _append_now(self, items: Sequence[Item]) -> None:
        raise NotImplementedError

    # -- the task ---------------------------------------------------------------------------------

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
