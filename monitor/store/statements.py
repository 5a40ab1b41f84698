"""The writer's SQL statements, built once per dialect: SQLAlchemy Core, executed for many rows at a time.

The inserts are executed with a list of parameter sets (one ``executemany`` or "insertmanyvalues" round
trip, their compiled form cached by the engine), never rebuilt per batch and never sent through the ORM's
bulk path (which splits a batch into one statement per run of rows with the same NULL columns). Lookups by
key are ``pbx = ? AND key IN (...)``, one statement per PBX and batch: searches of an index on both
databases, where a row-value ``(pbx, key) IN (VALUES ...)`` made SQLite scan the whole table.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Delete,
    Insert,
    Select,
    String,
    Table,
    and_,
    any_,
    bindparam,
    delete,
    insert,
    literal,
    or_,
    select,
    union_all,
)

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
    supersede: Delete  # per PBX: k_pbx; drop (linkedids, any row); final, final_cid (ids of provisional rows)
    results_of: Select[Any]  # results (not NOT_ASKED) of the calls (k_pbx, call_keys), oldest first


def _in(dialect: str, column: ColumnElement[str], name: str) -> ColumnElement[bool]:
    """``column`` is one of the values of the list bound as ``name``: ``= ANY($n)`` of one array parameter on
    PostgreSQL (one statement text, prepared once), the values spelled out on SQLite (no arrays)."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(String())))
    return column.in_(bindparam(name, expanding=True))


def _supersede(dialect: str) -> Delete:
    """One DELETE per PBX and batch of every row its records replace: ``drop`` (Linkedids, whatever the row),
    ``final`` / ``final_cid`` (Linkedids / call ids of provisional rows)."""
    pbx = _calls.c.pbx == bindparam("k_pbx")
    provisional = _calls.c.closed_by.in_([literal(v) for v in PROVISIONAL])
    drop = _in(dialect, _calls.c.linkedid, "drop")
    final = _in(dialect, _calls.c.linkedid, "final")
    final_cid = _in(dialect, _calls.c.call_id, "final_cid")
    if dialect == "sqlite":
        # SQLite searches an index for each arm of a UNION; an OR across the two indexes it plans as a scan of
        # the PBX's calls (and a row value ``(pbx, linkedid) IN (VALUES ...)`` as a scan of the whole table).
        return delete(_calls).where(_calls.c.id.in_(union_all(
            select(_calls.c.id).where(pbx, drop), select(_calls.c.id).where(pbx, final, provisional),
            select(_calls.c.id).where(pbx, final_cid, provisional))))
    # PostgreSQL plans the OR as a BitmapOr of index searches (before the table's first ANALYZE, in a new
    # database, as one read of the PBX's index range: a UNION would read it once per arm).
    return delete(_calls).where(pbx, or_(drop, and_(provisional, or_(final, final_cid))))


@cache
def statements(dialect: str) -> Statements:
    """The statements for ``sqlite`` or ``postgresql`` (built on first use, then shared)."""
    close = dialect_insert(dialect, OwedCallRow)
    res = cast(Table, SurveyResult.__table__)
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
        supersede=_supersede(dialect),
        # One PBX at a time: ``pbx = ? AND call_key IN (...)`` searches the unique index, where the row value
        # ``(pbx, call_key) IN (...)`` was a scan of the whole table.
        results_of=(select(res).where(res.c.pbx == bindparam("k_pbx"),
                                      _in(dialect, res.c.call_key, "call_keys"),
                                      res.c.status.not_in([literal(v) for v in sorted(NOT_ASKED)]))
                    .order_by(res.c.id)),
    )
