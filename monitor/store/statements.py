"""The writer's SQL statements, built once per dialect: SQLAlchemy Core, executed for many rows at a time.

Each statement is executed with a list of parameter sets (one ``executemany`` or "insertmanyvalues" round
trip, its compiled form cached by the engine), never rebuilt per batch and never sent through the ORM's bulk
path (which splits a batch into one statement per run of rows with the same NULL columns). Row lookups are
plain equalities on an indexed key, one parameter set per row: a row-value ``IN (VALUES ...)`` is not matched
against an index by SQLite, so it scanned the whole ``calls`` table once per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from sqlalchemy import Delete, Insert, Select, Table, bindparam, delete, insert, literal, select, union_all

from monitor.core.records import NOT_ASKED
from monitor.store.engine import dialect_insert
from monitor.store.models import (
    AgentEvent,
    Call,
    OwedCallRow,
    RingNoAnswerRow,
    SegmentRow,
    SurveyResult,
    SurveyRow,
    TransferRow,
)

PROVISIONAL = ("shutdown", "gap", "eof", "stale")
"""How a provisional record was closed: the same call seen to its hang-up replaces it."""
_CLOSE_COLS = ("closed_ts", "closed_by", "agent")

_calls = cast(Table, Call.__table__)


@dataclass(frozen=True, slots=True)
class Statements:
    """Every statement of a batch write, for one dialect."""

    calls: Insert  # on conflict (pbx, linkedid) nothing; returning (id, pbx, linkedid)
    children: tuple[tuple[str, Insert], ...]  # (child_rows key, plain insert) in write order
    members: Insert  # on conflict nothing; returning id
    owed_close: Insert  # upsert setting the closed columns
    owed_open: Insert  # on conflict nothing
    supersede: Delete  # per record: k_pbx; k_drop, k_amended (any row); k_final, k_final_cid (provisional rows)
    results_of: Select[Any]  # results (not NOT_ASKED) of the calls (k_pbx, call_keys), oldest first


@cache
def statements(dialect: str) -> Statements:
    """The statements for ``sqlite`` or ``postgresql`` (built on first use, then shared)."""
    # Fixed values, bound once: an expanding IN cannot be executed for many parameter sets.
    provisional = _calls.c.closed_by.in_([literal(v) for v in PROVISIONAL])
    pbx = _calls.c.pbx == bindparam("k_pbx")
    close = dialect_insert(dialect, OwedCallRow)
    res = SurveyResult.__table__
    return Statements(
        calls=(dialect_insert(dialect, Call).on_conflict_do_nothing(index_elements=["pbx", "linkedid"])
               .returning(_calls.c.id, _calls.c.pbx, _calls.c.linkedid)),
        children=tuple((k, insert(cast(Table, m.__table__))) for k, m in (
            ("segments", SegmentRow), ("rnas", RingNoAnswerRow), ("transfers", TransferRow), ("surveys", SurveyRow))),
        members=(dialect_insert(dialect, AgentEvent)
                 .on_conflict_do_nothing(index_elements=["pbx", "queue", "interface", "change", "ts"])
                 .returning(AgentEvent.__table__.c.id)),
        owed_close=close.on_conflict_do_update(index_elements=["pbx", "linkedid"],
                                               set_={c: close.excluded[c] for c in _CLOSE_COLS}),
        owed_open=dialect_insert(dialect, OwedCallRow).on_conflict_do_nothing(index_elements=["pbx", "linkedid"]),
        # One statement for every row a record replaces, each arm a search of an index (an OR across two
        # indexes is planned by SQLite as a scan of the PBX's calls); a key left NULL matches nothing.
        supersede=delete(_calls).where(_calls.c.id.in_(union_all(
            select(_calls.c.id).where(pbx, _calls.c.linkedid.in_([bindparam("k_drop"), bindparam("k_amended")])),
            select(_calls.c.id).where(pbx, _calls.c.linkedid == bindparam("k_final"), provisional),
            select(_calls.c.id).where(pbx, _calls.c.call_id == bindparam("k_final_cid"), provisional)))),
        # One PBX at a time: ``pbx = ? AND call_key IN (...)`` is a search of the unique index, where the
        # row value ``(pbx, call_key) IN (...)`` was a scan of the whole table.
        results_of=(select(res).where(res.c.pbx == bindparam("k_pbx"),
                                      res.c.call_key.in_(bindparam("call_keys", expanding=True)),
                                      res.c.status.not_in([literal(v) for v in sorted(NOT_ASKED)]))
                    .order_by(res.c.id)),
    )
