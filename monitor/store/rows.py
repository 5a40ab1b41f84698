"""Call records <-> table rows, and the batched, idempotent insert (one transaction per batch)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.core.records import (
    CallRecord,
    MemberNote,
    RingNoAnswer,
    Segment,
    Survey,
    Transfer,
    Voicemail,
)
from monitor.core.survey import SurveyResultRecord
from monitor.core.text import clean_text
from monitor.store.engine import cut as _cut
from monitor.store.fit import fit_rows
from monitor.store.journal_file import line_of
from monitor.store.models import AgentEvent, Call
from monitor.store.owed import OwedItem, owed_entry, owed_from_json, write_owed
from monitor.store.statements import Statements, statements
from monitor.store.surveys import SurveyItem, adopt_results, write_results

QL_PREFIX = "ql:"  # linkedid of calls imported from a queue_log (Linkedid is not in queue_log)


@dataclass(frozen=True, slots=True)
class MemberItem:
    """A member state change waiting to be stored."""

    pbx: str
    note: MemberNote
    source: str = "ami"


Item = CallRecord | MemberItem | SurveyItem | OwedItem


def call_row(r: CallRecord) -> dict[str, Any]:
    """The ``calls`` row of a record."""
    vm = r.voicemail
    return {
        "pbx": r.pbx, "linkedid": r.linkedid, "call_id": r.call_id, "caller": _cut(r.caller, 128),
        "caller_name": _cut(r.caller_name, 256) or "", "start_ts": r.start_ts, "end_ts": r.end_ts,
        "outcome": r.outcome, "closed_by": r.closed_by,
        "source": "queue_log" if r.linkedid.startswith(QL_PREFIX) else "ami",
        "repeat_windows": ",".join(r.repeat_windows), "ping_pong": r.ping_pong,
        "vm_queue": vm.queue if vm else None, "vm_reason": vm.reason if vm else None,
        "vm_ts": vm.ts if vm else None,
        "extra": json.dumps(_clean(r.extra), sort_keys=True, default=str) if r.extra else None,
    }


def _clean(v: Any) -> Any:
    """JSON-ready data with control characters removed from every string (keys included)."""
    if isinstance(v, str):
        return clean_text(v)
    if isinstance(v, dict):
        return {clean_text(str(k)): _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    return v


_SEGMENT_FIELDS = tuple(f.name for f in fields(Segment) if f.name != "ring_no_answers")


def child_rows(pk: int, r: CallRecord) -> dict[str, list[dict[str, Any]]]:
    """Segment, ring-no-answer, transfer and survey rows of a record whose call row has id ``pk``."""
    segs, rnas = [], []
    for i, s in enumerate(r.segments):
        # Scalars only (ring_no_answers has its own table): a shallow copy, not asdict's recursive deep copy.
        d = {f: getattr(s, f) for f in _SEGMENT_FIELDS}
        segs.append({**d, "call_pk": pk, "seq": i, "agent": _cut(s.agent, 128)})
        rnas += [{"call_pk": pk, "segment_seq": i, "queue": s.queue, "agent": _cut(x.agent, 128),
                  "ring_ms": x.ring_ms, "ts": x.ts} for x in s.ring_no_answers]
    xfers = [{"call_pk": pk, "seq": i, "type": t.type, "queue": t.queue, "from_agent": _cut(t.from_agent, 128),
              "target": _cut(t.to, 256), "ts": t.ts} for i, t in enumerate(r.transfers)]
    sv = r.survey
    surveys = [] if sv is None else [{
        "call_pk": pk, "caller": _cut(r.caller, 128), "queue": sv.queue, "agent": _cut(sv.agent, 128),
        "status": _cut(sv.status, 32), "score": sv.score, "nps": sv.nps, "ces": sv.ces, "raw": _cut(sv.raw, 64),
        "source": sv.source, "ts": sv.ts, "outcome": _cut(sv.outcome, 32),
    }]
    return {"segments": segs, "rnas": rnas, "transfers": xfers, "surveys": surveys}


def member_row(m: MemberItem) -> dict[str, Any]:
    """The ``agent_events`` row of a member note."""
    n = m.note
    return {"pbx": m.pbx, "queue": n.queue, "member": _cut(n.member, 128), "interface": _cut(n.interface, 256),
            "change": n.change, "reason": _cut(n.reason, 256) or "", "source": m.source, "ts": n.ts}


def record_of(c: Call) -> CallRecord:
    """Rebuild the :class:`CallRecord` of a stored call (relationships must be loaded)."""
    rnas: dict[int, list[RingNoAnswer]] = {}
    for x in c.ring_no_answers:
        rnas.setdefault(x.segment_seq, []).append(RingNoAnswer(x.agent, x.ring_ms, x.ts))
    segs = tuple(
        Segment(s.queue, s.entered, s.join_ts, s.end_ts, s.position, s.exit_position, s.outcome, s.wait_s,
                s.agent, s.agent_uniqueid, s.ring_s, s.talk_s, s.completion, tuple(rnas.get(s.seq, ())))
        for s in c.segments
    )
    sv = c.survey
    return CallRecord(
        linkedid=c.linkedid, call_id=c.call_id, caller=c.caller, caller_name=c.caller_name,
        start_ts=c.start_ts, end_ts=c.end_ts, segments=segs,
        transfers=tuple(Transfer(t.type, t.queue, t.from_agent, t.target, t.ts) for t in c.transfers),
        voicemail=(Voicemail(c.vm_queue, c.vm_reason or "", c.vm_ts or c.end_ts)
                   if c.vm_queue is not None else None),
        survey=(Survey(sv.queue, sv.agent, sv.status, sv.score, sv.raw, sv.source, sv.ts, sv.nps, sv.ces,
                       sv.outcome)
                if sv is not None else None),
        repeat_windows=tuple(w for w in c.repeat_windows.split(",") if w),
        outcome=c.outcome, closed_by=c.closed_by, pbx=c.pbx, ping_pong=c.ping_pong,
        extra=json.loads(c.extra) if c.extra else {},
    )


@dataclass
class WriteResult:
    """What one batch did."""

    calls: int = 0
    members: int = 0
    surveys: int = 0
    duplicates: int = 0
    attached: int = 0  # survey results that became (or replaced) a stored call's survey
    owed: int = 0  # owed-call rows upserted


async def write_batch(conn: AsyncConnection, dialect: str, items: Sequence[Item], scrub: bool = False,
                      adopt: bool = True) -> WriteResult:
    """Insert a batch in the caller's transaction; calls already stored (pbx+linkedid) are skipped.

    Every row is fitted to its columns (:func:`monitor.store.fit.fit_row`); ``scrub`` also blanks free text.
    ``adopt`` False: no survey result can be stored ahead of its call, so new calls look for none.

    Calls go first, then survey results: a result applied to its call sees the call's own survey whatever
    their order in the batch, which is what :mod:`monitor.store.surveys` decides on anyway.
    """
    res = WriteResult()
    calls: dict[tuple[str, str], CallRecord] = {}
    members: list[dict[str, Any]] = []
    results: list[SurveyItem] = []
    owed: list[OwedItem] = []
    for it in items:
        if isinstance(it, MemberItem):
            members.append(member_row(it))
        elif isinstance(it, OwedItem):
            owed.append(it)
        elif isinstance(it, SurveyItem):
            results.append(it)
        elif (it.pbx, it.linkedid) in calls and not it.extra.get("amended"):
            res.duplicates += 1
        else:  # an amended record (a late event changed a final call) supersedes the one before it
            calls[(it.pbx, it.linkedid)] = it
    st = statements(dialect)
    if calls:
        await _write_calls(conn, st, calls, scrub, res, adopt)
    if members:
        res.members = len((await conn.execute(st.members, fit_rows(AgentEvent.__table__, members, scrub))).all())
        res.duplicates += len(members) - res.members
    if owed:
        res.owed = await write_owed(conn, st, owed)
    if results:
        sr = await write_results(conn, dialect, results, scrub)
        res.surveys, res.attached = sr.written, res.attached + sr.attached
        res.duplicates += sr.duplicates
    return res


async def _supersede(conn: AsyncConnection, st: Statements, calls: dict[tuple[str, str], CallRecord]) -> None:
    """Delete the stored rows these records replace (a queue_log backfill, a provisional close, an amended one)."""
    keys: dict[str, tuple[list[str], list[str], list[str]]] = {}
    for r in calls.values():
        drop, final, final_cid = keys.setdefault(r.pbx, ([], [], []))
        # A live record supersedes the same call backfilled from queue_log (richer: linkedid, survey, voicemail).
        if not r.linkedid.startswith(QL_PREFIX):
            drop.append(QL_PREFIX + r.call_id)
        # An amended record (a late event changed a final call) replaces the stored one whatever it was.
        if r.extra.get("amended"):
            drop.append(r.linkedid)
        # A record closed by a gap or a shutdown is provisional: the same call seen to its hang-up (adopted again
        # after a reconnect or restart) replaces it, so the stored outcome is the real one. Matched by Linkedid
        # or by call id (the Uniqueid of the channel that ran Queue()): a call adopted at a resync under another
        # id than the one its provisional row was written under is still the same call.
        if r.closed_by == "hangup":
            final.append(r.linkedid)
            final_cid.append(r.call_id)
    for pbx, (drop, final, final_cid) in sorted(keys.items()):
        if drop or final:
            await conn.execute(st.supersede, {"k_pbx": pbx, "drop": drop, "final": final, "final_cid": final_cid})


async def _write_calls(conn: AsyncConnection, st: Statements, calls: dict[tuple[str, str], CallRecord], scrub: bool,
                       res: WriteResult, adopt: bool) -> None:
    """Insert call records with their child rows (segments, ring-no-answers, transfers, survey); counts into ``res``."""
    await _supersede(conn, st, calls)
    inserted = (await conn.execute(st.calls, fit_rows(Call.__table__, [call_row(r) for r in calls.values()],
                                                      scrub))).all()
    res.calls = len(inserted)
    res.duplicates += len(calls) - len(inserted)
    children: dict[str, list[dict[str, Any]]] = {"segments": [], "rnas": [], "transfers": [], "surveys": []}
    for pk, pbx, lid in inserted:
        for k, rows in child_rows(pk, calls[(pbx, lid)]).items():
            children[k] += rows
    for key, stmt in st.children:
        if children[key]:
            await conn.execute(stmt, fit_rows(stmt.table, children[key], scrub))
    if adopt:
        res.attached += await adopt_results(conn, st, [(pk, pbx, lid, calls[(pbx, lid)].caller)
                                                       for pk, pbx, lid in inserted])


def item_entry(it: Item) -> dict[str, Any]:
    """The journal entry of an item; its records stay dataclasses, written as JSON objects by ``line_of``."""
    if isinstance(it, CallRecord):
        return {"v": 1, "k": "call", "r": it}
    if isinstance(it, MemberItem):
        return {"v": 1, "k": "member", "pbx": it.pbx, "source": it.source, "n": it.note}
    if isinstance(it, SurveyItem):
        return {"v": 1, "k": "survey", "pbx": it.pbx, "s": it.result}
    return owed_entry(it)


def item_to_json(it: Item) -> dict[str, Any]:
    """The journal line of an item as plain JSON data (what :func:`item_from_json` reads back)."""
    parsed: dict[str, Any] = json.loads(line_of(item_entry(it)))
    return parsed


def item_from_json(d: dict[str, Any]) -> Item:
    """Parse a journal line (raises KeyError/TypeError/ValueError on a malformed one)."""
    from monitor.core.records import record_from_dict

    if d["k"] == "member":
        return MemberItem(str(d["pbx"]), MemberNote(**d["n"]), str(d.get("source", "ami")))
    if d["k"] == "call":
        return record_from_dict(d["r"])
    if d["k"] == "survey":
        return SurveyItem(str(d["pbx"]), SurveyResultRecord(**d["s"]))
    if d["k"] == "owed":
        return owed_from_json(d)
    raise ValueError(f"unknown journal entry kind {d['k']!r}")
