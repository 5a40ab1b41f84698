"""/metrics renders on the event loop in slices: the loop (the AMI reader) keeps running during a large scrape."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from monitor.core.ingest import Ingest
from monitor.core.tracker import CallTracker
from monitor.web.metrics import QmonMetrics


def _members(queues: int, agents: int) -> bytes:
    """QueueMemberAdded for every (queue, agent): the AgentBoard's rows, hence the per-agent series."""
    return b"".join(
        f"Event: QueueMemberAdded\r\nQueue: q{q}\r\nMemberName: a{a}\r\nInterface: PJSIP/{q}-{a}\r\n"
        f"StateInterface: PJSIP/{q}-{a}\r\nMembership: dynamic\r\nPenalty: 0\r\nCallsTaken: 0\r\nLastCall: 0\r\n"
        f"LastPause: 0\r\nInCall: 0\r\nStatus: {1 + a % 3}\r\nPaused: {a % 2}\r\nPausedReason: \r\n\r\n".encode()
        for q in range(queues) for a in range(agents))


def _metrics(queues: int, agents: int) -> QmonMetrics:
    from monitor.ami.wire import WireParser

    m = QmonMetrics(CollectorRegistry(auto_describe=True), queues=[f"q{q}" for q in range(queues)], clock=lambda: 1e9)
    ing = Ingest(CallTracker())
    for h in WireParser(expect_banner=False).feed(_members(queues, agents)):
        ing.feed(h, 1e9)
    m.add_pbx("default", ing)
    return m


async def test_the_loop_runs_while_a_large_scrape_renders() -> None:
    m = _metrics(40, 50)
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    t = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    body = await m.expose_async(slice_s=0.001)
    done = True
    await t
    assert ticks - before > 1  # an unsliced render would not let the ticker run at all
    assert body == m.expose()
    assert b'qmon_agent_calls_total{agent="a49",pbx="default",queue="q39"} 0.0' in body


def test_member_counts_of_every_queue_in_one_pass_equal_the_per_queue_counts() -> None:
    from monitor.ami.wire import WireParser

    ing = Ingest(CallTracker())
    for h in WireParser(expect_banner=False).feed(_members(3, 7)):
        ing.feed(h, 1e9)
    members = ing.tracker.members
    queues = ["q0", "q1", "q2", "nobody"]
    assert members.counts_by_queue(queues) == {q: members.counts(q) for q in queues}
    assert sum(members.counts_by_queue(["q1"])["q1"].values()) == 7
