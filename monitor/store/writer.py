"""The database side of the writer: one batch per transaction, bounded in time; bad rows isolated, never lost."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from monitor.store.faults import bounded, describe, error_kind
from monitor.store.journal import Journal
from monitor.store.models import Call
from monitor.store.rows import Item, WriteResult, item_to_json, write_batch

log = logging.getLogger("qmon.store")


class BatchWriter:
    """Writes batches (a mixin: :class:`~monitor.store.store.Store` sets these attributes)."""

    journal: Journal
    deadline_s: float
    _stats: dict[str, int]
    _wengine: AsyncEngine | None
    _wsessions: async_sessionmaker[AsyncSession] | None

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
        await asyncio.to_thread(self.journal.reject, [item_to_json(item)])
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
        assert self._wsessions is not None
        sessions = self._wsessions

        async def go() -> WriteResult:
            async with sessions() as session, session.begin():
                return await write_batch(session, self.dialect, items, scrub=scrub)

        return await bounded(go(), self.deadline_s)

    def _account(self, res: WriteResult) -> None:
        self._stats["batches"] += 1
        self._stats["calls_written"] += res.calls
        self._stats["members_written"] += res.members
        self._stats["surveys_written"] += res.surveys
        self._stats["surveys_attached"] += res.attached
        self._stats["duplicates"] += res.duplicates
        self._stats["owed_written"] += res.owed

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

