"""Backfill (``qmon import-queue-log``) call records from an Asterisk queue_log, never counting a call twice.

queue_log has no Linkedid, so imported calls get ``ql:<callid>``; a call already stored from AMI is recognised
by its ``call_id`` (= queue_log callid) on the same PBX and skipped, and a later AMI record of an imported call
replaces it (see :func:`monitor.store.rows.write_batch`). Importing the same file twice changes nothing.
Not in queue_log, so never imported: voicemail fallthrough, join_empty, survey answers, the caller's name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from monitor.core.records import CallRecord, MemberNote, RingNoAnswer, Segment, Transfer
from monitor.core.repeat import RepeatIndex, normalize_number
from monitor.store.models import AgentEvent, Call
from monitor.store.rows import QL_PREFIX, Item, MemberItem
from monitor.store.store import Store

_END = {"ABANDON": "abandoned", "EXITWITHTIMEOUT": "timeout", "EXITEMPTY": "exit_empty", "EXITWITHKEY": "exit_key",
        "WITHDRAW": "withdraw"}
#: Verbs that carry nothing the report counts (read, tallied by verb, never an error).
_INFO = frozenset({"DID", "RINGCANCELED", "QUEUESTART", "CONFIGRELOAD", "SYSCOMPAT", "INFO", "AGENTDUMP",
                   "PAUSEALL", "UNPAUSEALL", "PAUSECALL", "ENTERQUEUEPRIORITY"})
#: Verbs that end an answered visit (its member is named on the line).
_AFTER_ANSWER = frozenset({"COMPLETEAGENT", "COMPLETECALLER", "BLINDTRANSFER", "ATTENDEDTRANSFER"})
_MEMBER = {"ADDMEMBER": "login", "AGENTLOGIN": "login", "REMOVEMEMBER": "logout", "AGENTLOGOFF": "logout",
           "PAUSE": "pause", "UNPAUSE": "unpause"}


@dataclass
class _Seg:
    queue: str
    join_ts: float
    position: int
    end_ts: float | None = None
    exit_position: int = 0
    outcome: str = "unknown"
    wait_s: float | None = None
    agent: str | None = None
    agent_uid: str | None = None
    ring_s: int | None = None
    talk_s: float | None = None
    completion: str | None = None
    rnas: list[RingNoAnswer] = field(default_factory=list)


@dataclass
class _Call:
    callid: str
    caller: str | None
    start_ts: float
    end_ts: float
    segs: list[_Seg] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)


@dataclass
class QueueLog:
    """What a queue_log holds, as records and member changes."""

    records: list[CallRecord] = field(default_factory=list)
    members: list[MemberItem] = field(default_factory=list)
    lines: int = 0
    bad_lines: int = 0
    ignored_events: dict[str, int] = field(default_factory=dict)  # informational verbs (DID, RINGCANCELED...)
    ignored: list[tuple[int, str, str]] = field(default_factory=list)  # (line number, line, why it was not used)
    relabelled: int = 0  # lines placed on the visit they belong to although Asterisk logged another callid

    def ignore(self, number: int, line: str, why: str) -> None:
        """A line that could not be used: kept with its reason (the import prints every one)."""
        self.ignored.append((number, line, why))


def _int(v: str, default: int = 0) -> int:
    try:
        return int(float(v))
    except ValueError:
        return default


def _f(v: str) -> float | None:
    try:
        return float(v)
    except ValueError:
        return None


def _relabelled(calls: dict[str, _Call], partners: dict[str, str], callid: str, queue: str, agent: str,
                 event: str, ts: float) -> tuple[_Call, _Seg] | None:
    """The visit a line belongs to when Asterisk logged it under another call's callid.

    An attended transfer into a queue whose consult call still waits there swaps the two channels (masquerade,
    asterisk/asterisk#759): queue_log then writes the waiting visit's CONNECT/COMPLETE* under the caller's callid
    and the transferer's ATTENDEDTRANSFER under the consult call's. The line belongs to the one visit in that
    queue that can take it (open for CONNECT/exits, answered by that member for COMPLETE*/transfers), the swap
    partner's first, else the latest joined.
    """
    best: tuple[_Call, _Seg] | None = None
    for other in calls.values():
        if other.callid == callid:
            continue
        for seg in reversed(other.segs):
            if seg.queue != queue or seg.join_ts > ts:
                continue
            if event in _AFTER_ANSWER:
                ok = seg.outcome == "answered" and seg.agent == agent and seg.completion is None
            else:
                ok = seg.outcome == "unknown"
            if not ok:
                continue
            if partners.get(callid) == other.callid:
                return other, seg
            if best is None or seg.join_ts > best[1].join_ts:
                best = (other, seg)
    return best


def parse_queue_log(lines: Iterable[str], pbx: str = "default", abandon_short_s: float = 5.0) -> QueueLog:
    """Parse queue_log lines (``time|callid|queue|agent|event|data...``) into call records (time order).

    Every line that is not used is in ``ignored`` with its reason (informational verbs are tallied in
    ``ignored_events``); lines Asterisk logged under a swapped callid are placed where they belong (``relabelled``).
    """
    out = QueueLog()
    calls: dict[str, _Call] = {}
    partners: dict[str, str] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        out.lines += 1
        parts = line.split("|")
        ts = _f(parts[0]) if parts else None
        if len(parts) < 5 or ts is None:
            out.bad_lines += 1
            out.ignore(number, line, "not a queue_log line (time|callid|queue|agent|event|data...)")
            continue
        _, callid, queue, agent, event, *data = parts
        data += [""] * (5 - len(data))
        if event in _MEMBER:
            if queue not in ("", "NONE") and agent not in ("", "NONE"):
                reason = data[0] if event == "PAUSE" else ""
                out.members.append(MemberItem(pbx, MemberNote(queue, agent, agent, _MEMBER[event], reason, ts),
                                              "queue_log"))
            else:
                out.ignore(number, line, f"{event} without a queue or member")
            continue
        if event in _INFO:
            out.ignored_events[event] = out.ignored_events.get(event, 0) + 1
            continue
        call = calls.get(callid)
        if event == "ENTERQUEUE":
            if call is None:
                call = calls[callid] = _Call(callid, normalize_number(data[1]), ts, ts)
            call.segs.append(_Seg(queue, ts, _int(data[2])))
            continue
        if event not in _KNOWN:
            out.ignore(number, line, f"unknown event {event!r}: nothing to count")
            continue
        seg = next((s for s in reversed(call.segs) if s.queue == queue), None) if call else None
        if seg is not None and event == "CONNECT" and seg.outcome != "unknown":
            seg = None  # that visit was already answered or ended: the line is another visit's
        if seg is None:
            found = _relabelled(calls, partners, callid, queue, agent, event, ts)
            if found is None:
                out.ignore(number, line, f"{event}: no visit of callid {callid} in queue {queue} to apply it to")
                continue
            call, seg = found
            partners[callid], partners[call.callid] = call.callid, callid
            out.relabelled += 1
        assert call is not None
        call.end_ts = max(call.end_ts, ts)
        _apply(call, seg, event, agent, data, ts, abandon_short_s)
    out.records = sorted((_record(c, pbx) for c in calls.values()), key=lambda r: (r.start_ts, r.call_id))
    return out


_KNOWN = frozenset({"CONNECT", "RINGNOANSWER", *_AFTER_ANSWER, *_END})


def _apply(call: _Call, seg: _Seg, event: str, agent: str, data: list[str], ts: float, short_s: float) -> None:
    if event == "CONNECT":
        seg.outcome, seg.wait_s, seg.agent = "answered", float(_int(data[0])), agent
        seg.agent_uid, seg.ring_s, seg.end_ts = data[1] or None, _int(data[2]), ts
    elif event in ("COMPLETEAGENT", "COMPLETECALLER"):
        seg.completion = "agent" if event == "COMPLETEAGENT" else "caller"
        seg.talk_s = float(_int(data[1]))
    elif event in ("BLINDTRANSFER", "ATTENDEDTRANSFER"):
        blind = event == "BLINDTRANSFER"
        seg.completion, seg.talk_s = "transfer", float(_int(data[3]))
        to = f"{data[0]}@{data[1]}" if blind else f"{data[0].lower()}:{data[1]}"
        call.transfers.append(Transfer("blind" if blind else "attended", seg.queue, agent, to, ts))
    elif event in _END:
        i = 1 if event == "EXITWITHKEY" else 0
        seg.exit_position, seg.position = _int(data[i]), _int(data[i + 1], seg.position)
        seg.wait_s, seg.end_ts = float(_int(data[i + 2])), ts
        seg.outcome = _END[event]
        if seg.outcome == "abandoned" and seg.wait_s < short_s:
            seg.outcome = "abandoned_short"
    elif event == "RINGNOANSWER":
        seg.rnas.append(RingNoAnswer(agent, _int(data[0]), ts))


def _record(c: _Call, pbx: str) -> CallRecord:
    segs = tuple(
        Segment(s.queue, True, s.join_ts, s.end_ts if s.end_ts is not None else c.end_ts, s.position,
                s.exit_position, s.outcome, s.wait_s, s.agent, s.agent_uid, s.ring_s, s.talk_s, s.completion,
                tuple(s.rnas))
        for s in c.segs
    )
    if any(s.outcome == "answered" for s in segs):
        outcome = "answered"
    else:
        outcome = segs[-1].outcome if segs else "unknown"
    unknown = any(s.outcome == "unknown" for s in segs)
    return CallRecord(QL_PREFIX + c.callid, c.callid, c.caller, "", c.start_ts, c.end_ts, segs,
                      tuple(c.transfers), outcome=outcome, closed_by="eof" if unknown else "queue_log", pbx=pbx)


async def import_queue_log(
    store: Store, log: QueueLog, pbx: str, windows: tuple[str, ...] = ("24h",),
) -> dict[str, int]:
    """Write the parsed queue_log through a started store; calls/member changes already stored are skipped."""
    assert store.engine is not None
    sessions = async_sessionmaker(store.engine)
    ids = [r.call_id for r in log.records]
    existing: set[str] = set()
    async with sessions() as session:
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            existing |= set((await session.scalars(
                select(Call.call_id).where(Call.pbx == pbx, Call.call_id.in_(chunk)))).all())
        known: list[tuple[str, str, str, float]] = []
        if log.members:
            lo, hi = min(m.note.ts for m in log.members), max(m.note.ts for m in log.members)
            known = [tuple(r) for r in (await session.execute(  # type: ignore[misc]
                select(AgentEvent.queue, AgentEvent.member, AgentEvent.change, AgentEvent.ts)
                .where(AgentEvent.pbx == pbx, AgentEvent.ts >= lo - 2, AgentEvent.ts <= hi + 2))).all()]
    index: RepeatIndex = store.repeat_index(windows)
    if log.records:
        await store.load_repeat_index(index, index.horizon, log.records[0].start_ts - 1e-6, pbx)
    items: list[Item] = []
    for r in log.records:
        rep = index.check_and_add(r.caller, r.start_ts)
        if r.call_id not in existing:
            items.append(store.prepare(replace(r, repeat_windows=rep)))
    # AMI stamps member changes to the microsecond, queue_log to the second: the same change within 2 s.
    members = [m for m in log.members if not any(
        q == m.note.queue and mem == m.note.member and ch == m.note.change and abs(t - m.note.ts) <= 2
        for q, mem, ch, t in known)]
    all_items: list[Item] = [*items, *members]
    for i in range(0, len(all_items), store.settings.batch_size):
        await store.write_items(all_items[i:i + store.settings.batch_size])
    return {"calls": len(log.records), "imported": len(items), "already_stored": len(log.records) - len(items),
            "member_changes": len(members), "member_changes_already_stored": len(log.members) - len(members),
            "lines": log.lines, "bad_lines": log.bad_lines, "relabelled": log.relabelled,
            "ignored_lines": len(log.ignored), "informational_lines": sum(log.ignored_events.values())}
