"""Asterisk 22's real resync answers (``live22/resync-responses.ami``) over TCP: what qmon adopts from them.

One caller waits in ``support`` (QueueEntry ``Wait: 10``, its ``;2`` leg ``Duration 00:00:12``, Linkedid only in
CoreShowChannel), another talks to agent2 (Queue() channel bridged with ``Local/agent2@lab-agents-00000003;1``,
whose Duration is 9 s). The daemon's clock is a year after the PBX's: every time must come from the PBX clock
(the Ping answer's Timestamp), never from the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from monitor.ami.live import AmiSource
from monitor.ami.wire import Headers, WireParser
from monitor.core.ingest import Ingest, closed_records
from monitor.core.records import CallRecord, Note
from monitor.core.tracker import CallTracker
from monitor.settings import AmiSettings
from tests.support.amiserver import AmiState, AmiTestServer, state_at
from tests.support.helpers import FIXTURES, until

RECORDED = FIXTURES / "live22" / "resync-responses.ami"
PBX_NOW = 1796035254.0  # the agent1 leg (Uniqueid 1796035253.10) rang for 1 s when the answers were taken


def recorded() -> list[Headers]:
    """Every message of the recorded session after its banner."""
    return WireParser(expect_banner=True).feed(RECORDED.read_bytes())


def recorded_state() -> AmiState:
    """The recorded answers as the test server's state (their own field order and values)."""
    strip = {"Event", "ActionID", "EventList", "ListItems"}
    by: dict[str, list[Headers]] = {}
    for m in recorded():
        by.setdefault(str(m.get("Event", "")), []).append({k: v for k, v in m.items() if k not in strip})
    return AmiState(by["QueueParams"], by["QueueMember"], by["QueueEntry"], by["CoreShowChannel"], PBX_NOW)


@dataclass
class Run:
    tracker: CallTracker
    source: AmiSource
    records: list[CallRecord] = field(default_factory=list)


@contextlib.asynccontextmanager
async def _resynced(srv: AmiTestServer) -> AsyncIterator[Run]:
    tracker = CallTracker()
    run = Run(tracker, None)  # type: ignore[arg-type]

    def sink(notes: list[Note]) -> None:
        run.records.extend(closed_records(notes))

    run.source = AmiSource(AmiSettings(port=srv.port, secret="secret", backoff_initial_s=0.05),
                           Ingest(tracker, [sink]), clock=time.time)
    task = asyncio.create_task(run.source.run())
    try:
        await run.source.wait_ready()
        yield run
    finally:
        await run.source.close()
        await asyncio.wait_for(task, 5)


def test_the_test_server_answers_with_asterisk_22s_fields() -> None:
    # The server's own answers (state derived from a transcript) carry the headers Asterisk 22 sends.
    want: dict[str, set[str]] = {}
    for m in recorded():
        if "Event" in m:
            want.setdefault(str(m["Event"]), set()).update(k for k in m if k != "ActionID")
    srv = AmiTestServer.from_transcript("concurrent", queues=("support",))
    st = state_at(srv.headers, 390, queues=("support",))
    got = {"QueueParams": st.queue_params, "QueueMember": st.queue_members, "QueueEntry": st.queue_entries,
           "CoreShowChannel": st.channels}
    for event, items in got.items():
        assert items and all(set(h) | {"Event"} == want[event] for h in items), (event, want[event], items[0])


@pytest.mark.usefixtures("year_after_recordings")
async def test_waiting_caller_adopted_with_its_linkedid_and_asterisks_wait() -> None:
    async with AmiTestServer(state=recorded_state()) as srv, _resynced(srv) as run:
        tr = run.tracker
        waiting = tr.find_call("1796035243.1")
        assert waiting is not None and waiting.linkedid == "1796035243.0"  # joined from CoreShowChannel
        assert abs(waiting.segments[0].join_ts - (PBX_NOW - 10)) < 1.0  # QueueEntry Wait: 10
        assert abs(waiting.start_ts - (PBX_NOW - 12)) < 1.0  # Duration of its Linkedid channel (;1)
        assert tr.waiting()["support"] == [waiting.segments[0].join_ts]


@pytest.mark.usefixtures("year_after_recordings")
async def test_talking_caller_adopted_as_answered_by_the_bridged_member() -> None:
    async with AmiTestServer(state=recorded_state()) as srv, _resynced(srv) as run:
        tr = run.tracker
        talking = tr.find_call("1796035245.5")
        assert talking is not None and talking.linkedid == "1796035245.4"
        seg = talking.segments[0]
        assert (seg.queue, seg.outcome, seg.agent, seg.agent_uniqueid) == ("support", "answered", "agent2",
                                                                             "1796035245.6")
        assert seg.end_ts is not None and abs(seg.end_ts - (PBX_NOW - 9)) < 1.0  # the member leg's Duration
        assert abs(talking.start_ts - (PBX_NOW - 10)) < 1.0
        counts = tr.members.counts("support")
        assert counts["in_call"] == 1 and counts["available"] == 1, counts
        # The talk ends: Asterisk's own HoldTime/TalkTime replace the estimates.
        await srv.push({"Event": "AgentComplete", "Privilege": "agent,all", "Timestamp": f"{PBX_NOW + 5:.6f}",
                        "Channel": "Local/5557002@lab-callers-00000002;2", "Uniqueid": "1796035245.5",
                        "Linkedid": "1796035245.4", "CallerIDNum": "5557002", "Queue": "support",
                        "MemberName": "agent2", "Interface": "Local/agent2@lab-agents/n", "HoldTime": "2",
                        "TalkTime": "14", "Reason": "caller", "DestUniqueid": "1796035245.6"})
        await srv.push({"Event": "Hangup", "Privilege": "call,all", "Timestamp": f"{PBX_NOW + 5:.6f}",
                        "Channel": "Local/5557002@lab-callers-00000002;2", "Uniqueid": "1796035245.5",
                        "Linkedid": "1796035245.4", "CallerIDNum": "5557002", "Cause": "16"})
        # Any later event: a record may be held a short grace period after its hang-up (late AgentComplete).
        await srv.push({"Event": "Newchannel", "Privilege": "call,all", "Timestamp": f"{PBX_NOW + 30:.6f}",
                        "Channel": "Local/5557003@lab-callers-00000009;1", "Uniqueid": "1796035284.20",
                        "Linkedid": "1796035284.20"})
        await until(lambda: run.records, 5, "the talking call's record")
    (rec,) = run.records
    seg = rec.segments[0]
    assert (rec.linkedid, rec.closed_by, seg.talk_s, seg.wait_s) == ("1796035245.4", "hangup", 14.0, 2.0)
    assert seg.end_ts == PBX_NOW + 5 - 14 and seg.join_ts == PBX_NOW + 5 - 16
