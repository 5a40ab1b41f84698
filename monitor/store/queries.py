"""Read side of the store: records rebuilt from rows, the summary report, repeat warm-up, cooldown, prune."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from monitor.core.records import CallRecord
from monitor.core.repeat import RepeatIndex
from monitor.core.report import build_report
from monitor.store.models import AgentEvent, Call, RingNoAnswerRow, SegmentRow, SurveyResult, SurveyRow, TransferRow
from monitor.store.rows import record_of
from monitor.store.surveys import last_result_at

Sessions = async_sessionmaker[AsyncSession]
MAX_RECENT = 1000


def _with_children(stmt: Select[Call]) -> Select[Call]:
    return stmt.options(selectinload(Call.segments), selectinload(Call.ring_no_answers),
                        selectinload(Call.transfers), selectinload(Call.survey))


async def records_between(sessions: Sessions, from_ts: float, to_ts: float) -> list[CallRecord]:
    """Calls that started in [from_ts, to_ts), in the order they ended (as a replay produces them)."""
    stmt = _with_children(select(Call).where(Call.start_ts >= from_ts, Call.start_ts < to_ts)
                          .order_by(Call.end_ts, Call.id))
    async with sessions() as session:
        return [record_of(c) for c in (await session.scalars(stmt)).all()]


async def recent(sessions: Sessions, since: float | None, queue: str | None, limit: int) -> list[CallRecord]:
    """The newest calls (by start), optionally since a time and through a queue."""
    stmt = select(Call)
    if since is not None:
        stmt = stmt.where(Call.start_ts >= since)
    if queue is not None:
        stmt = stmt.where(select(SegmentRow.id).where(SegmentRow.call_pk == Call.id, SegmentRow.queue == queue)
                          .exists())
    stmt = _with_children(stmt.order_by(Call.start_ts.desc(), Call.id.desc())
                          .limit(max(1, min(limit, MAX_RECENT))))
    async with sessions() as session:
        return [record_of(c) for c in (await session.scalars(stmt)).all()]


async def summary(sessions: Sessions, from_ts: float, to_ts: float, sl_threshold_s: float) -> dict[str, Any]:
    """``build_report`` over the stored calls: equal to the replay report by construction (events = 0)."""
    return build_report(await records_between(sessions, from_ts, to_ts), 0, sl_threshold_s)


async def warm_repeats(sessions: Sessions, index: RepeatIndex, horizon_s: float, now: float,
                       pbx: str | None = None) -> int:
    """Feed each caller's latest call within the horizon into ``index`` (at most its capacity, newest kept)."""
    window: list[ColumnElement[bool]] = [Call.caller.is_not(None), Call.start_ts >= now - horizon_s,
                                         Call.start_ts <= now]
    if pbx is not None:
        window.append(Call.pbx == pbx)
    last = select(Call.caller.label("caller"), func.max(Call.start_ts).label("last")).where(*window).group_by(
        Call.caller).order_by(func.max(Call.start_ts).desc()).limit(index.max_entries).subquery()
    # The Linkedid of each caller's latest call too: a call adopted again after a restart is not its own repeat.
    stmt = (select(last.c.caller, last.c.last, func.max(Call.linkedid))
            .join(Call, (Call.caller == last.c.caller) & (Call.start_ts == last.c.last))
            .group_by(last.c.caller, last.c.last).order_by(last.c.last))
    async with sessions() as session:
        rows = (await session.execute(stmt)).all()
    for caller, ts, linkedid in rows:  # oldest first: the index evicts from the front
        if caller is not None:
            index.remember(caller, float(ts), linkedid or "")
    return len(rows)


async def last_survey_at(sessions: Sessions, caller: str) -> float | None:
    """Latest survey time of a (stored-form) caller: a call's survey or a result where they were asked."""
    async with sessions() as session:
        v = await session.scalar(select(func.max(SurveyRow.ts)).where(SurveyRow.caller == caller))
    times = [float(v)] if v is not None else []
    if (r := await last_result_at(sessions, caller)) is not None:
        times.append(r)
    return max(times, default=None)


async def prune(sessions: Sessions, cutoff: float) -> dict[str, int]:
    """Delete calls that ended before ``cutoff`` (children cascade), older agent events and survey results.

    ``survey_results`` is in the counts only when some were deleted (the shape callers knew stays the same).
    """
    async with sessions() as session, session.begin():
        old = select(Call.id).where(Call.end_ts < cutoff).scalar_subquery()
        counts: dict[str, int] = {}
        # Children first: SQLite only cascades when foreign keys are on, which a foreign connection may lack.
        for model in (SegmentRow, RingNoAnswerRow, TransferRow, SurveyRow):
            await session.execute(delete(model).where(model.call_pk.in_(old)))
        r = await session.execute(delete(Call).where(Call.end_ts < cutoff))
        counts["calls"] = int(getattr(r, "rowcount", 0) or 0)
        r = await session.execute(delete(AgentEvent).where(AgentEvent.ts < cutoff))
        counts["agent_events"] = int(getattr(r, "rowcount", 0) or 0)
        r = await session.execute(delete(SurveyResult).where(SurveyResult.ended_ts < cutoff))
        if n := int(getattr(r, "rowcount", 0) or 0):
            counts["survey_results"] = n
    return counts
