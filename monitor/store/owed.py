"""Owed callbacks and agent events in SQL: the ``owed_calls`` upsert, the reload at start, the report's reads.

An owed call is written when it opens and again when it closes (``OwedNote``); both are an upsert on
(pbx, linkedid), so replaying the journal or a superseded record never doubles a row, and a close that reaches
the database before its open still leaves one closed row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from monitor.core.records import MemberNote, OwedCall, OwedNote
from monitor.store.engine import cut as _cut
from monitor.store.models import AgentEvent, OwedCallRow
from monitor.store.statements import Statements

Sessions = async_sessionmaker[AsyncSession]


@dataclass(frozen=True, slots=True)
class OwedItem:
    """An owed-call change waiting to be stored (the caller already hashed when hashing is on)."""

    note: OwedNote


def owed_row(o: OwedCall) -> dict[str, Any]:
    """The ``owed_calls`` row of an owed call."""
    return {"pbx": o.pbx, "linkedid": o.linkedid, "caller": _cut(o.caller, 128) or "", "queue": o.queue,
            "start_ts": o.start_ts, "ended_ts": o.ended_ts, "wait_s": o.wait_s, "outcome": o.outcome,
            "voicemail": o.voicemail, "closed_ts": o.closed_ts, "closed_by": o.closed_by,
            "agent": _cut(o.agent, 128)}


def owed_of(r: OwedCallRow) -> OwedCall:
    """The :class:`OwedCall` of a stored row."""
    return OwedCall(r.pbx, r.linkedid, r.caller, r.queue, r.start_ts, r.ended_ts, r.wait_s, r.outcome,
                    r.voicemail, r.closed_ts, r.closed_by, r.agent)


async def write_owed(conn: AsyncConnection, st: Statements, items: Sequence[OwedItem]) -> int:
    """Upsert the batch's owed calls (the last change of a call wins; a close is never reopened); rows written."""
    last: dict[tuple[str, str], OwedNote] = {}
    for it in items:
        key = (it.note.call.pbx, it.note.call.linkedid)
        prev = last.get(key)
        if prev is None or prev.change != "close" or it.note.change == "close":
            last[key] = it.note
    # Two statements, each executed for many rows (one database round trip each, compiled once), not one
    # statement per call: a close sets its columns from the row it proposes; an open of a call stored already
    # (journal replay, superseded record) leaves it as it is. One change per call here, so the order is free.
    closes = [owed_row(n.call) for n in last.values() if n.change == "close"]
    opens = [owed_row(n.call) for n in last.values() if n.change != "close"]
    if closes:
        await conn.execute(st.owed_close, closes)
    if opens:
        await conn.execute(st.owed_open, opens)
    return len(last)


def owed_entry(it: OwedItem) -> dict[str, Any]:
    """The journal entry of an owed item (the call stays a dataclass: see ``monitor.store.rows.item_entry``)."""
    return {"v": 1, "k": "owed", "change": it.note.change, "o": it.note.call}


def owed_from_json(d: dict[str, Any]) -> OwedItem:
    """Parse an owed journal line (KeyError/TypeError on a malformed one)."""
    return OwedItem(OwedNote(str(d["change"]), OwedCall(**d["o"])))


async def load_open(sessions: Sessions, pbx: str, max_age_s: float) -> list[OwedCall]:
    """Owed calls of ``pbx`` still open, oldest first, that ended within ``max_age_s`` (s) of its newest one.

    The age is measured on the PBX clock of the stored rows themselves, never against the daemon's clock.
    """
    async with sessions() as session:
        newest = await session.scalar(select(func.max(OwedCallRow.ended_ts)).where(OwedCallRow.pbx == pbx))
        if newest is None:
            return []
        stmt = (select(OwedCallRow).where(OwedCallRow.pbx == pbx, OwedCallRow.closed_ts.is_(None),
                                          OwedCallRow.ended_ts >= newest - max_age_s)
                .order_by(OwedCallRow.ended_ts))
        return [owed_of(r) for r in (await session.scalars(stmt)).all()]


async def owed_between(sessions: Sessions, from_ts: float, to_ts: float, pbx: str | None = None) -> list[OwedCall]:
    """Owed calls (open or closed; of one PBX) whose call ended in [from_ts, to_ts), oldest first."""
    stmt = select(OwedCallRow).where(OwedCallRow.ended_ts >= from_ts, OwedCallRow.ended_ts < to_ts)
    if pbx is not None:
        stmt = stmt.where(OwedCallRow.pbx == pbx)
    stmt = stmt.order_by(OwedCallRow.ended_ts, OwedCallRow.id)
    async with sessions() as session:
        return [owed_of(r) for r in (await session.scalars(stmt)).all()]


async def member_notes_between(sessions: Sessions, from_ts: float, to_ts: float,
                               pbx: str | None = None) -> list[MemberNote]:
    """Stored member changes (login/logout/pause/unpause) in [from_ts, to_ts) (of one PBX), in time order."""
    stmt = select(AgentEvent).where(AgentEvent.ts >= from_ts, AgentEvent.ts < to_ts)
    if pbx is not None:
        stmt = stmt.where(AgentEvent.pbx == pbx)
    stmt = stmt.order_by(AgentEvent.ts, AgentEvent.id)
    async with sessions() as session:
        return [MemberNote(e.queue, e.member, e.interface, e.change, e.reason, e.ts)
                for e in (await session.scalars(stmt)).all()]
