"""Survey results in SQL: every attempt in ``survey_results``, the call's counted answer reconciled into ``surveys``.

Two tables, two jobs:

- ``survey_results``: one row per survey attempt as the survey server reported it (any status, AGI or
  callback). A result is the same result again when ``pbx``, ``call_key`` (the Linkedid, else the Uniqueid,
  else ""), ``source`` and ``started_ts`` match: a journal replayed twice or a sink called twice stores it
  once. ``/api/v1/surveys`` and the cooldown read this table.
- ``surveys``: at most one row per stored call, *the* answer that ``summary()`` / ``qmon report`` count (they
  rebuild call records). It comes from the call record (the tracker attached the AGI or UserEvent answer
  while the call was open) and is reconciled with ``survey_results`` by one rule, whatever the order:
  a result becomes the call's survey when the call has none, or replaces it when it ranks strictly higher
  (an answer > invalid / no input > hang-up / declined). Equal ranks keep what is there, so the same answer
  seen twice (attached to the call *and* reported as a result) is counted once. A callback survey of a call
  stored long ago updates that call; a result stored before its call (AGI during the call) is applied when
  the call row arrives. ``not_eligible`` and ``unreachable`` results never become a call's survey (the
  caller was not asked), and never count for the cooldown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from monitor.core.records import NOT_ASKED as _NOT_ASKED
from monitor.core.records import Survey, SurveyResultRecord
from monitor.store.engine import cut, dialect_insert
from monitor.store.fit import fit_row
from monitor.store.models import Call, SurveyResult, SurveyRow
from monitor.store.statements import Statements

Sessions = async_sessionmaker[AsyncSession]
MAX_RESULTS = 1000
NOT_ASKED = tuple(sorted(_NOT_ASKED))
"""Statuses of attempts where the caller was never asked: stored and queryable, never a call's survey."""

_KEY = ["pbx", "call_key", "source", "started_ts"]
_FIELDS = ("linkedid", "uniqueid", "caller", "queue", "agent", "status", "csat", "nps", "ces", "raw", "language",
           "source", "started_ts", "ended_ts", "reason")


@dataclass(frozen=True, slots=True)
class SurveyItem:
    """A survey result waiting to be stored (caller already hashed when hashing is on)."""

    pbx: str
    result: SurveyResultRecord


def call_key(r: SurveyResultRecord) -> str:
    """The call a result belongs to: its Linkedid, else the caller channel's Uniqueid, else ""."""
    return r.linkedid or r.uniqueid or ""


def result_row(it: SurveyItem) -> dict[str, Any]:
    """The ``survey_results`` row of an item."""
    r = it.result
    return {
        "pbx": it.pbx, "call_key": cut(call_key(r), 80) or "", "linkedid": cut(r.linkedid, 80),
        "uniqueid": cut(r.uniqueid, 64), "caller": cut(r.caller, 128), "queue": cut(r.queue, 128),
        "agent": cut(r.agent, 128), "status": cut(r.status, 32) or "", "csat": r.csat, "nps": r.nps, "ces": r.ces,
        "raw": cut(r.raw, 64) or "", "language": cut(r.language, 16) or "", "source": cut(r.source, 16) or "",
        "reason": cut(r.reason, 256) or "", "started_ts": r.started_ts, "ended_ts": r.ended_ts,
    }


def record_of_result(row: Any) -> SurveyResultRecord:
    """Rebuild the :class:`SurveyResultRecord` of a stored result (a ``SurveyResult`` or a row of its table)."""
    return SurveyResultRecord(**{f: getattr(row, f) for f in _FIELDS})


def rank(status: str, score: int | None) -> int:
    """How much a call's survey says: an answer (3) > invalid or no input (2) > hang-up, declined, ... (1)."""
    if status == "OK" and score is not None:
        return 3
    return 2 if status in ("NOINPUT", "INVALID") else 1


async def _attach(conn: AsyncConnection, call_pk: int, caller: str | None, sv: Survey) -> bool:
    """Make ``sv`` the call's survey when it has none or ``sv`` ranks strictly higher; True if it did."""
    cur = (await conn.execute(select(SurveyRow.id, SurveyRow.status, SurveyRow.score)
                              .where(SurveyRow.call_pk == call_pk))).first()
    if cur is not None and rank(sv.status, sv.score) <= rank(cur.status, cur.score):
        return False
    # The answer's queue and agent are the call's: the tracker filled them in (CallTracker.survey_answer).
    values = {"caller": cut(caller, 128), "queue": cut(sv.queue, 128), "agent": cut(sv.agent, 128),
              "status": cut(sv.status, 32), "score": sv.score, "nps": sv.nps, "ces": sv.ces,
              "raw": cut(sv.raw, 64) or "", "source": cut(sv.source, 16) or "", "ts": sv.ts,
              "outcome": cut(sv.outcome, 32)}
    if cur is None:
        await conn.execute(insert(SurveyRow).values(call_pk=call_pk, **values))
    else:
        await conn.execute(update(SurveyRow).where(SurveyRow.id == cur.id).values(**values))
    return True


@dataclass
class ResultsWritten:
    """What one batch of survey results did."""

    written: int = 0
    duplicates: int = 0
    attached: int = 0


async def write_results(conn: AsyncConnection, dialect: str, items: Sequence[SurveyItem],
                        scrub: bool = False) -> ResultsWritten:
    """Insert results (those already stored are skipped) and apply each new one to its call if stored.

    ``scrub``: free text blanked, numbers clamped (a row the database refused, see ``Store.write_items``).
    """
    out = ResultsWritten()
    rows: dict[tuple[Any, ...], tuple[dict[str, Any], SurveyResultRecord]] = {}
    for it in items:
        row = fit_row(SurveyResult.__table__, result_row(it), scrub)
        key = tuple(row[k] for k in _KEY)
        if key in rows:
            out.duplicates += 1
        else:
            rows[key] = (row, it.result)
    if not rows:
        return out
    stmt = (dialect_insert(dialect, SurveyResult).values([r for r, _ in rows.values()])
            .on_conflict_do_nothing(index_elements=_KEY)
            .returning(SurveyResult.pbx, SurveyResult.call_key, SurveyResult.source, SurveyResult.started_ts))
    inserted = {tuple(r) for r in (await conn.execute(stmt)).all()}
    out.written = len(inserted)
    out.duplicates += len(rows) - len(inserted)
    for key, (row, rec) in rows.items():  # in submission order: among equal ranks the first one stays
        if key not in inserted or row["status"] in NOT_ASKED or not row["call_key"]:
            continue
        call = (await conn.execute(select(Call.id, Call.caller)
                                   .where(Call.pbx == row["pbx"], Call.linkedid == row["call_key"]))).first()
        if call is not None and await _attach(conn, call.id, call.caller, rec.to_survey()):
            out.attached += 1
    return out


async def adopt_results(conn: AsyncConnection, st: Statements,
                        calls: Sequence[tuple[int, str, str, str | None]]) -> int:
    """Calls just stored (pk, pbx, linkedid, caller): apply results stored before them, oldest first."""
    by_key = {(pbx, lid): (pk, caller) for pk, pbx, lid, caller in calls}
    n = 0
    for pbx in sorted({pbx for pbx, _ in by_key}):
        keys = [lid for p, lid in by_key if p == pbx]
        for res in (await conn.execute(st.results_of, {"k_pbx": pbx, "call_keys": keys})).all():
            pk, caller = by_key[(res.pbx, res.call_key)]
            n += await _attach(conn, pk, caller, record_of_result(res).to_survey())
    return n


async def results_stored(conn: AsyncConnection) -> bool:
    """Whether any result that may become a call's survey is stored (else no call needs :func:`adopt_results`)."""
    stmt = select(SurveyResult.id).where(SurveyResult.status.not_in(NOT_ASKED)).limit(1)
    return (await conn.execute(stmt)).first() is not None


async def last_result_at(sessions: Sessions, caller: str) -> float | None:
    """Latest end of a survey the (stored-form) caller was asked (any status but not_eligible/unreachable)."""
    stmt = select(func.max(SurveyResult.ended_ts)).where(SurveyResult.caller == caller,
                                                         SurveyResult.status.not_in(NOT_ASKED))
    async with sessions() as session:
        v = await session.scalar(stmt)
    return float(v) if v is not None else None


async def query(
    sessions: Sessions, *, since: float | None, until: float | None, queue: str | None, agent: str | None,
    max_score: int | None, limit: int, with_caller: bool,
) -> list[dict[str, Any]]:
    """Results ended in [since, until), newest first; ``max_score`` keeps CSAT answers <= it (who to call back)."""
    stmt = select(SurveyResult, Call.call_id).outerjoin(
        Call, and_(Call.pbx == SurveyResult.pbx, Call.linkedid == SurveyResult.call_key))
    if since is not None:
        stmt = stmt.where(SurveyResult.ended_ts >= since)
    if until is not None:
        stmt = stmt.where(SurveyResult.ended_ts < until)
    if queue is not None:
        stmt = stmt.where(SurveyResult.queue == queue)
    if agent is not None:
        stmt = stmt.where(SurveyResult.agent == agent)
    if max_score is not None:
        stmt = stmt.where(SurveyResult.csat.is_not(None), SurveyResult.csat <= max_score)
    stmt = stmt.order_by(SurveyResult.ended_ts.desc(), SurveyResult.id.desc()).limit(max(1, min(limit, MAX_RESULTS)))
    async with sessions() as session:
        rows = (await session.execute(stmt)).all()
    out = []
    for res, call_id in rows:
        d: dict[str, Any] = {"pbx": res.pbx, "call_id": call_id}
        d |= {f: getattr(res, f) for f in _FIELDS}
        # The number is there to call the customer back: a hash cannot be dialled, and is not shown.
        if not with_caller:
            d["caller"] = None
        out.append(d)
    return out
