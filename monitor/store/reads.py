"""The read side of :class:`~monitor.store.store.Store`: reports, API queries, repeat warm-up, cooldown, prune."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from monitor.core.records import CallRecord, OwedCall
from monitor.core.repeat import RepeatIndex
from monitor.store import owed, queries, surveys
from monitor.store.engine import HashedRepeatIndex


class StoreReads:
    """Queries over what the store wrote (a mixin: the store sets these attributes in ``__init__``/``start``)."""

    clock: Callable[[], float]
    hash: Callable[[str | None], str | None] | None
    _sessions: async_sessionmaker[AsyncSession] | None

    def _s(self) -> async_sessionmaker[AsyncSession]:
        assert self._sessions is not None, "Store.start() first"
        return self._sessions

    async def recent_calls(self, since: float | None = None, queue: str | None = None,
                           limit: int = 100) -> list[dict[str, Any]]:
        """Stored call records (newest first) as dicts, for /api/v1/calls."""
        return [r.to_dict() for r in await queries.recent(self._s(), since, queue, limit)]

    async def records(self, from_ts: float, to_ts: float) -> list[CallRecord]:
        """Stored call records that started in [from_ts, to_ts)."""
        return await queries.records_between(self._s(), from_ts, to_ts)

    async def summary(self, from_ts: float, to_ts: float, sl_threshold_s: float = 20.0) -> dict[str, Any]:
        """``build_report`` over the calls stored for [from_ts, to_ts) (``events`` is 0: not stored)."""
        return await queries.summary(self._s(), from_ts, to_ts, sl_threshold_s)

    async def query_surveys(
        self, *, since: float | None = None, until: float | None = None, queue: str | None = None,
        agent: str | None = None, max_score: int | None = None, limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Stored survey results ended in [since, until), newest first (the ``SurveyQuery`` of /api/v1/surveys).

        ``max_score`` keeps results with a CSAT answer <= it. ``caller`` is the number to call back, or None
        when callers are hashed.
        """
        return await surveys.query(self._s(), since=since, until=until, queue=queue, agent=agent,
                                   max_score=max_score, limit=limit, with_caller=self.hash is None)

    async def load_owed(self, pbx: str, max_age_s: float = 7 * 86400.0) -> list[OwedCall]:
        """Open owed calls of ``pbx`` (ended within ``max_age_s`` s of its newest one), to restore at start.

        Empty when callers are hashed: a hash cannot be called back, nor matched by the live tracker.
        """
        if self.hash is not None:
            return []
        return await owed.load_open(self._s(), pbx, max_age_s)

    async def owed_calls(self, from_ts: float, to_ts: float) -> list[OwedCall]:
        """Owed calls (open or closed) whose call ended in [from_ts, to_ts)."""
        return await owed.owed_between(self._s(), from_ts, to_ts)

    def repeat_index(self, windows: tuple[str, ...] = ("24h",), max_entries: int = 500_000) -> RepeatIndex:
        """The tracker's repeat index: keyed by the hash when callers are hashed, so warm-up matches."""
        if self.hash is None:
            return RepeatIndex(windows, max_entries)
        return HashedRepeatIndex(self.hash, windows, max_entries)

    async def load_repeat_index(self, index: RepeatIndex, horizon_s: float | None = None,
                                now: float | None = None, pbx: str | None = None) -> int:
        """Warm ``index`` with stored callers of the last ``horizon_s`` (bounded by its size); returns how many."""
        return await queries.warm_repeats(self._s(), index, horizon_s if horizon_s is not None else index.horizon,
                                          self.clock() if now is None else now, pbx)

    async def last_survey_at(self, caller: str | None) -> float | None:
        """When this caller (plain number) was last asked a survey (a call's survey or a result), or None."""
        if caller is None:
            return None
        key = self.hash(caller) if self.hash is not None else caller
        if key is None:
            return None
        return await queries.last_survey_at(self._s(), key)

    async def surveyed_within(self, caller: str | None, seconds: float, now: float | None = None) -> bool:
        """The survey cooldown: was this caller surveyed within the last ``seconds``?"""
        last = await self.last_survey_at(caller)
        return last is not None and (self.clock() if now is None else now) - last < seconds

    async def prune(self, older_than_s: float, now: float | None = None) -> dict[str, int]:
        """Delete calls, agent events and survey results older than ``older_than_s`` (retention); rows deleted."""
        return await queries.prune(self._s(), (self.clock() if now is None else now) - older_than_s)
