"""The store's fast write path changes nothing stored or journaled (SQLite and PostgreSQL).

Checked against plain definitions kept here: journal lines byte for byte against ``json.dumps(asdict(...))``,
fitted rows against the column-by-column rule, and the rows of many-row statements (``executemany``) against
the same items written one per batch. The lookups each record makes (superseded rows, survey results waiting
for their call) must search an index: a row-value ``IN`` made SQLite scan the whole table once per batch.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import BigInteger, FromClause, Integer, String, Table, event, text

from bench.stream import Stream, captures
from monitor.ami.selection import tracker_selection
from monitor.ami.wire import WireParser
from monitor.core.ingest import Ingest
from monitor.core.records import CallRecord, MemberNote, OwedNote
from monitor.core.survey import SurveyResultRecord
from monitor.core.tracker import CallTracker
from monitor.daemon import _store_sink
from monitor.settings import StoreSettings
from monitor.store import Store
from monitor.store.engine import cut
from monitor.store.fit import FREE_TEXT, INT32, fit_row
from monitor.store.journal_file import line_of
from monitor.store.models import Base
from monitor.store.owed import OwedItem
from monitor.store.rows import Item, MemberItem, item_entry, item_from_json, item_to_json
from monitor.store.statements import statements
from monitor.store.surveys import SurveyItem
from tests.support.store import DB

TABLES = ("calls", "call_segments", "ring_no_answers", "transfers", "surveys", "survey_results", "agent_events",
          "owed_calls")


def _stream_items() -> list[Item]:
    """What the daemon's store sink submits for one repetition of the bench stream (every recorded capture)."""
    items: list[Item] = []
    store = Store(StoreSettings(journal_path="unused.jsonl"))
    store._put = items.append  # type: ignore[method-assign,assignment]
    ingest = Ingest(CallTracker(), [_store_sink(store, "default")])
    parser = WireParser(select=tracker_selection(defer=True))
    data = b"".join(Stream(captures()).reps(1))
    for i in range(0, len(data), 65536):
        for h in parser.feed(data[i:i + 65536]):
            ingest.feed(h, 0.0)
    return items


ITEMS = _stream_items()
CALLS = [it for it in ITEMS if isinstance(it, CallRecord)]


def test_the_stream_submits_every_kind_of_item() -> None:
    kinds = {type(it) for it in ITEMS}
    assert kinds == {CallRecord, MemberItem, OwedItem}, kinds
    assert len(CALLS) > 50 and any(c.segments[0].ring_no_answers for c in CALLS)
    assert any(c.transfers for c in CALLS) and any(c.survey for c in CALLS)


# -- the journal ------------------------------------------------------------------------------------------


def _line_before(it: Item) -> bytes:
    """The journal line as the store wrote it before: ``asdict`` of every record, then ``json.dumps``."""
    if isinstance(it, MemberItem):
        d: dict[str, Any] = {"v": 1, "k": "member", "pbx": it.pbx, "source": it.source, "n": asdict(it.note)}
    elif isinstance(it, SurveyItem):
        d = {"v": 1, "k": "survey", "pbx": it.pbx, "s": asdict(it.result)}
    elif isinstance(it, OwedItem):
        d = {"v": 1, "k": "owed", "change": it.note.change, "o": asdict(it.note.call)}
    else:
        d = {"v": 1, "k": "call", "r": it.to_dict()}
    return (json.dumps(d, separators=(",", ":"), default=str) + "\n").encode("utf-8", "surrogatepass")


class Colour(enum.StrEnum):
    RED = "red"


@dataclass(frozen=True)
class Tag:
    name: str
    at: tuple[float, ...]


def _survey_result(c: CallRecord, status: str, csat: int | None, dt: float) -> SurveyItem:
    return SurveyItem(c.pbx, SurveyResultRecord(c.linkedid, c.call_id, c.caller, "support", "agent1", status, csat,
                                                None, None, str(csat or ""), "en", "agi", c.end_ts + dt,
                                                c.end_ts + dt + 5))


def test_journal_lines_are_byte_for_byte_the_asdict_encoding() -> None:
    odd = replace(CALLS[0], caller_name="Zoë \udce9\x00 李", extra={
        "colour": Colour.RED, "when": datetime(2026, 1, 2, tzinfo=UTC), "tags": {"b"}, "tag": Tag("x", (1.5,)),
        "nested": {"k": [Tag("y", ()), (1, None)]}, "n": 2**70, "f": 0.1})
    items = [*ITEMS, odd, _survey_result(CALLS[1], "completed", 4, 1.0), _survey_result(CALLS[2], "hangup", None, 2)]
    for it in items:
        assert line_of(item_entry(it)) == _line_before(it), it
    for it in [*ITEMS, items[-2], items[-1]]:  # and every entry reads back as the item it was
        assert item_from_json(item_to_json(it)) == it
        assert item_from_json(json.loads(line_of(item_entry(it)))) == it


# -- fitting rows to their columns -----------------------------------------------------------------------


def _fit_before(table: FromClause, row: dict[str, Any], scrub: bool) -> dict[str, Any]:
    """The rule as first written: every string cleaned and cut to its column, per column."""
    out: dict[str, Any] = {}
    for key, v in row.items():
        col = table.c.get(key)
        if col is None:
            out[key] = v
            continue
        if scrub and key in FREE_TEXT and v is not None:
            v = None if getattr(col, "nullable", False) else ""
        elif isinstance(v, str):
            length = getattr(col.type, "length", None) if isinstance(col.type, String) else None
            v = cut(v, length) if length else cut(v, len(v))
        elif (scrub and isinstance(v, int) and not isinstance(v, bool) and isinstance(col.type, Integer)
              and not isinstance(col.type, BigInteger)):
            v = min(max(v, INT32[0]), INT32[1])
        out[key] = v
    return out


@pytest.mark.parametrize("scrub", [False, True])
def test_fitted_rows_follow_the_column_rule(scrub: bool) -> None:
    hostile = ["", "ok", "a\x00b\tc\r\nd\x1b\x7f\x85", "caf\udce9", "x" * 5000, Colour.RED, "李" * 300]
    for table in Base.metadata.sorted_tables:
        assert isinstance(table, Table)
        for i, v in enumerate(hostile):
            row: dict[str, Any] = {c.key: v if i % 2 or isinstance(c.type, String) else 2**40 for c in table.c}
            row["not_a_column"] = v
            row["id"] = None
            assert fit_row(table, row, scrub) == _fit_before(table, row, scrub), (table.name, v)


# -- the statements ----------------------------------------------------------------------------------------


async def _rows(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows (sorted) without their ids, a child's call by its (pbx, linkedid)."""
    assert store.engine is not None
    out = {}
    async with store.engine.connect() as conn:
        calls = {r.id: (r.pbx, r.linkedid) for r in (await conn.execute(text("SELECT id, pbx, linkedid FROM calls")))}
        for t in TABLES:
            rows = (await conn.execute(text(f"SELECT * FROM {t}"))).mappings().all()
            out[t] = sorted((tuple(calls[v] if k == "call_pk" else v for k, v in r.items() if k != "id")
                             for r in rows), key=repr)
    return out


def _phases() -> list[list[Item]]:
    """Provisional closes, queue_log backfills and early survey results; the live items; the same again (a
    journal replay); amended records and late results. No call twice within a phase."""
    prov = [replace(c, closed_by="gap", outcome="unknown") for c in CALLS[::5]]
    adopted = [replace(c, linkedid=c.call_id, closed_by="shutdown") for c in CALLS[3::10]]  # Linkedid unknown
    backfill = [replace(c, linkedid="ql:" + c.call_id) for c in CALLS[1::7]]
    early = [_survey_result(c, "completed", 4, 1) for c in CALLS[2::6]]
    early += [_survey_result(c, "not_eligible", None, 2) for c in CALLS[4::11]]
    late = [_survey_result(c, "completed", 2, 3) for c in CALLS[5::8]]
    late += [_survey_result(c, "hangup", None, 4) for c in CALLS[2::12]]
    amended = [replace(c, outcome="answered", extra={**c.extra, "amended": True}) for c in CALLS[6::9]]
    return [[*early, *prov, *adopted, *backfill], list(ITEMS), list(reversed(ITEMS)), [*amended, *late]]


async def test_many_rows_per_statement_store_what_one_row_per_batch_stores(db: DB, tmp_path: Path) -> None:
    """Every phase in batches of 97 (executemany, several statements' pages) and the same items one per batch:
    the same rows and counters; the stored records read back as the last ones written."""
    results = []
    for size in (97, 1):
        store = Store(db.settings(journal_path=str(tmp_path / f"j{size}.jsonl")))
        await store.start()
        for phase in _phases():
            for i in range(0, len(phase), size):
                await store.write_items(phase[i:i + size])
        # (not owed_written: a batch upserts an owed call once, whatever it holds of its changes)
        stats = {k: store.stats[k] for k in ("calls_written", "members_written", "surveys_written",
                                             "surveys_attached", "rejected", "lost")}
        results.append((await _rows(store), stats, await store.records(0, 2e9)))
        if size == 97:
            async with store.engine.begin() as conn:  # type: ignore[union-attr]
                for t in reversed(TABLES):
                    await conn.execute(text(f"DELETE FROM {t}"))
        await store.close()
    (rows, stats, records), (rows1, stats1, records1) = results
    assert rows == rows1 and stats == stats1
    assert stats["rejected"] == stats["lost"] == 0 and stats["surveys_attached"] > 0
    assert len(rows["calls"]) == len(CALLS) and not any(r[1].startswith("ql:") for r in rows["calls"])
    assert {r[8] for r in rows["calls"]} == {"hangup"}  # every provisional row replaced
    last = {(c.pbx, c.linkedid): c for c in [*CALLS, *_phases()[3]] if isinstance(c, CallRecord)}
    by_id = {(r.pbx, r.linkedid): r for r in records}
    assert by_id.keys() == last.keys() and {(r.pbx, r.linkedid) for r in records1} == last.keys()
    for key, rec in by_id.items():  # what was written, with the survey the results made it
        assert replace(rec, survey=None) == replace(last[key], survey=None), key


async def test_lookups_search_indexes_never_scan_sqlite(tmp_path: Path) -> None:
    """The SQL the store sends for superseded rows and waiting survey results, as sent, searches indexes."""
    store = Store(StoreSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'q.db'}",
                                journal_path=str(tmp_path / "j.jsonl"), auto_migrate=True))
    await store.start(journal=False)
    assert store.engine is not None
    st = statements("sqlite")
    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        sent.append((sql, params[0] if many else params))

    event.listen(store.engine.sync_engine, "before_cursor_execute", capture)
    async with store.engine.connect() as conn:
        await conn.execute(st.supersede, {"k_pbx": "p", "drop": ["ql:1", "2"], "final": ["1", "3"],
                                          "final_cid": ["1.1", "3.1"]})
        await conn.execute(st.results_of, {"k_pbx": "p", "call_keys": ["1", "2"]})
        event.remove(store.engine.sync_engine, "before_cursor_execute", capture)
        assert len(sent) == 2
        for sql, params in sent:
            details = [str(r[-1]) for r in (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)).all()]
            assert any(d.startswith("SEARCH") for d in details), details
            assert not any(d.startswith("SCAN") and "CONSTANT ROW" not in d for d in details), details
        await conn.rollback()
    await store.close()


async def test_a_result_stored_before_its_call_by_an_earlier_run_is_adopted(db: DB) -> None:
    """No result in the database: new calls look for none. A result stored by an earlier run is found at start,
    one stored by this run from then on: the call that comes later gets it as its survey."""
    call, other = CALLS[0], CALLS[1]
    first = Store(db.settings())
    await first.start()
    assert first._results_waiting is False
    await first.write_items([_survey_result(call, "completed", 5, 1)])
    assert first._results_waiting is True
    await first.write_items([replace(other, survey=None)])
    await first.close()
    again = Store(db.settings())
    await again.start()
    assert again._results_waiting is True
    await again.write_items([replace(call, survey=None)])
    (rec,) = [r for r in await again.records(0, 2e9) if r.linkedid == call.linkedid]
    assert rec.survey is not None and rec.survey.score == 5
    await again.close()


def test_member_and_owed_notes_are_stored_items() -> None:
    # The sink's items are the ones the journal knows (a new kind would need an entry and a test above).
    assert all(isinstance(it.note, MemberNote) for it in ITEMS if isinstance(it, MemberItem))
    assert all(isinstance(it.note, OwedNote) for it in ITEMS if isinstance(it, OwedItem))
