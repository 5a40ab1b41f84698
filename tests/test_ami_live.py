"""The live AMI source over a real TCP conversation with the test AMI server (fed from the transcripts)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from monitor.ami.live import AmiNotConnected, AmiSource
from monitor.core.ingest import Ingest, closed_records, merge_records
from monitor.core.preread import PreRead
from monitor.core.records import CallRecord, Note
from monitor.core.report import build_report
from monitor.core.tracker import CallTracker
from monitor.settings import AmiSettings
from tests.support.amiserver import AmiTestServer
from tests.support.factcheck import ALL_RECORDINGS, RECORDING_IDS, assert_facts, assert_report, load_facts

SECRET = "s3cr3t-do-not-log"
BYTE_SCENARIOS = ["voicemail_empty", "abandoned_short", "answered_caller_hangup"]


@dataclass
class Live:
    """A running AmiSource and what it produced."""

    source: AmiSource
    ingest: Ingest
    tracker: CallTracker
    records: list[CallRecord] = field(default_factory=list)
    answers: int = 0  # events fed that carry an ActionID (the resync lists; the driver's own in the stream)

    def finish(self) -> list[CallRecord]:
        """Close what is still open (like the end of a replay) and return every record."""
        merge_records(self.records, closed_records(self.tracker.close_all(self.tracker.now, "eof")))
        return self.records


@contextlib.asynccontextmanager
async def live_source(server: AmiTestServer, **settings: Any) -> AsyncIterator[Live]:
    """An AmiSource logged in to ``server`` (secret SECRET), run as a task, closed on exit."""
    tracker = CallTracker()
    live = Live(None, None, tracker)  # type: ignore[arg-type]

    def sink(notes: list[Note]) -> None:
        merge_records(live.records, closed_records(notes))

    live.ingest = Ingest(tracker, [sink])
    feed = live.ingest.feed

    def counting_feed(headers: Any, now: float) -> list[Note]:
        # A pre-read Newexten (PreRead) never answers an action: it carries no ActionID.
        live.answers += not isinstance(headers, PreRead) and "Event" in headers and "ActionID" in headers
        return feed(headers, now)

    live.ingest.feed = counting_feed  # type: ignore[method-assign]
    cfg = AmiSettings(port=server.port, secret=SECRET, **settings)
    # The clock follows the stream (events carry their own Timestamp; list answers do not).
    live.source = AmiSource(cfg, live.ingest, clock=lambda: tracker.now or time.time())
    task = asyncio.create_task(live.source.run())
    try:
        yield live
    finally:
        await live.source.close()
        await asyncio.wait_for(task, 5)


async def _drain(live: Live, server: AmiTestServer) -> None:
    """Wait until the server wrote everything and we processed it (a Ping answer comes after it all)."""
    await server.wait_streamed()
    await live.source.send_action({"Action": "Ping"})


async def _replay_over_tcp(scenario: str, mode: str, version: str = "ast22") -> None:
    path = next(b for v, s, b in ALL_RECORDINGS if (v, s) == (version, scenario)).with_suffix(".ami")
    async with AmiTestServer.from_transcript(path, secret=SECRET, mode=mode, seed=len(scenario)) as srv, \
            live_source(srv) as live:
        await live.source.wait_ready()
        await _drain(live, srv)
        assert live.ingest.skipped == {}
        # Events the tracker never reads went by unparsed, yet the counter covers the whole stream.
        stream = [m for m in srv.messages if m.startswith(b"Event:")]
        assert live.ingest.events - live.answers == sum(b"ActionID" not in m for m in stream)
        assert live.source._proto is not None and live.source._proto.parser.dropped_events > 0
        records = live.finish()
        facts = load_facts(scenario, version)
        assert_facts(records, facts)
        assert_report(build_report(records, live.ingest.events, queues=live.tracker.queues), facts)
        assert live.source.bytes_received > sum(len(m) for m in srv.messages)


@pytest.mark.parametrize("mode", ["whole", "chunks"])
@pytest.mark.parametrize(("version", "scenario", "base"), ALL_RECORDINGS, ids=RECORDING_IDS)
async def test_transcript_over_tcp(version: str, scenario: str, base: object, mode: str) -> None:
    await _replay_over_tcp(scenario, mode, version)


@pytest.mark.parametrize("scenario", BYTE_SCENARIOS)
async def test_transcript_over_tcp_byte_by_byte(scenario: str) -> None:
    await _replay_over_tcp(scenario, "bytes")


@pytest.mark.parametrize("mode", ["whole", "chunks"])
async def test_members_added_on_the_stream_survive_the_resync_answer(mode: str) -> None:
    # The test server answers QueueStatus as Asterisk would where the answer lands on the wire: after the
    # QueueMemberAdded events it already wrote, the members are listed (QueueStatus replaces the members).
    async with AmiTestServer.from_transcript("concurrent", secret=SECRET, mode=mode, seed=5) as srv, \
            live_source(srv) as live:
        await live.source.wait_ready()
        await _drain(live, srv)
        assert sorted(live.tracker.members.by_key) == [("support", "agent1"), ("support", "agent2")]
        assert sorted(m.name for m in live.ingest.live(live.tracker.now).members) == ["agent1", "agent2"]


async def test_login_failure_is_clear_and_backs_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with AmiTestServer(secret="the-right-one") as srv, \
            live_source(srv, username="monitor", backoff_initial_s=0.01, backoff_max_s=0.2) as live:
        await asyncio.sleep(1.0)
        src = live.source
        assert not src.connected
        assert "refused" in src.last_error and "monitor" in src.last_error and f"127.0.0.1:{srv.port}" in src.last_error
        assert "Authentication failed" in src.last_error
        # A refused login waits backoff_max_s (0.1..0.2 s with jitter): at most ~10 attempts in 1 s, not hundreds.
        assert 2 <= len(srv.logins) <= 11, srv.logins
        assert all(not ok for _, ok in srv.logins)
    errors = [r for r in caplog.records if r.name == "qmon.ami" and r.levelno >= logging.WARNING]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # logged once, not per attempt
    assert all(SECRET not in r.getMessage() for r in caplog.records)


async def test_connection_refused_backs_off_then_connects() -> None:
    srv = AmiTestServer(secret=SECRET)
    await srv.start()
    port = srv.port
    await srv.close()
    async with live_source(srv, backoff_initial_s=0.05, backoff_max_s=0.1) as live:
        await asyncio.sleep(0.3)
        assert not live.source.connected and "cannot connect" in live.source.last_error
        late = await AmiTestServer(secret=SECRET).start(port)
        await live.source.wait_ready(5)
        assert live.source.connected and live.source.last_error == "" and live.source.reconnects == 0
        await late.close()


def _concurrent_server(drop_at: int, resume_at: int) -> AmiTestServer:
    # QueueStatus/CoreShowChannels report what is alive where each connection's stream is (state="auto").
    return AmiTestServer.from_transcript("concurrent", secret=SECRET, mode="chunks", seed=7, drop_at=drop_at,
                                         resume_at=resume_at, state="auto")


async def _gap_run(drop_at: int, resume_at: int, caplog: pytest.LogCaptureFixture
                   ) -> tuple[AmiTestServer, Live]:
    caplog.set_level(logging.INFO, logger="qmon.ami")
    srv = _concurrent_server(drop_at, resume_at)
    async with srv, live_source(srv, backoff_initial_s=0.02, backoff_max_s=0.1) as live:
        await live.source.wait_ready()
        for _ in range(200):
            if srv.connections >= 2 and live.source.connected and live.source.reconnects == 1:
                break
            await asyncio.sleep(0.02)
        await live.source.wait_ready()
        await _drain(live, srv)
        live.finish()
    assert srv.connections == 2 and live.source.reconnects == 1
    after = [a["Action"] for a in srv.actions if a["_conn"] == "2"]
    assert after[:4] == ["Login", "Ping", "QueueStatus", "CoreShowChannels"], after  # Ping: the PBX clock
    msgs = [r.getMessage() for r in caplog.records if r.name == "qmon.ami"]
    assert sum("lost" in m for m in msgs) == 1 and sum("reconnected" in m for m in msgs) == 1, msgs
    ids = [r.call_id for r in live.records]
    assert len(ids) == len(set(ids)), ids  # no call counted twice
    return srv, live


async def test_drop_mid_event_then_resume_keeps_every_call_exact(caplog: pytest.LogCaptureFixture) -> None:
    """Cut inside message 420 (2 calls talking, 4 waiting); the stream continues with that message."""
    _, live = await _gap_run(420, 420, caplog)
    assert_facts(live.records, load_facts("concurrent"))  # calls alive across the gap are complete


async def test_drop_with_lost_events_closes_dead_calls_as_gap(caplog: pytest.LogCaptureFixture) -> None:
    """Messages 430-499 are lost: two calls end inside the gap (5551102 hangs up, 5551104 abandons)."""
    _, live = await _gap_run(430, 500, caplog)
    facts = load_facts("concurrent")
    gone = {"1795381260.5", "1795381261.11"}
    gap = {r.call_id for r in live.records if r.closed_by == "gap"}
    assert gap == gone
    assert all(r.outcome == "unknown" or r.segments[-1].outcome == "unknown" or r.closed_by == "gap"
               for r in live.records if r.call_id in gone)
    kept = [c for c in facts["calls"] if c["uniqueid"] not in gone]
    summary = {"voicemail_calls": sum(c["voicemail"] for c in kept),
               "distinct_callers": len({c["caller"] for c in kept}),
               "calls_from_repeat_callers": sum(c["repeat_caller"] for c in kept)}
    assert_facts([r for r in live.records if r.call_id not in gone],
                 {**facts, "calls": kept, "summary": summary})


async def test_ping_unanswered_drops_and_reconnects() -> None:
    async with AmiTestServer(secret=SECRET, handlers={"Ping": lambda a: []}) as srv, \
            live_source(srv, ping_interval_s=0.05, backoff_initial_s=0.01) as live:
        await live.source.wait_ready()
        for _ in range(100):
            if live.source.reconnects >= 1:
                break
            await asyncio.sleep(0.02)
        assert live.source.reconnects >= 1 and srv.connections >= 2


async def test_originate_answers_and_actions_recorded() -> None:
    async with AmiTestServer(secret=SECRET) as srv, live_source(srv) as live:
        await live.source.wait_ready()
        res = await live.source.send_action({"Action": "Originate", "Channel": "Local/100@x", "Async": "true",
                                             "Context": "qmon-survey-callback", "Exten": "s", "Priority": "1"})
        assert isinstance(res, list) and res[-1]["Event"] == "OriginateResponse" and res[-1]["Response"] == "Success"
        srv.originate = "Error"
        sync = await live.source.send_action({"Action": "Originate", "Channel": "Local/100@x", "Context": "c",
                                              "Exten": "s", "Priority": "1"})
        assert isinstance(sync, dict) and sync["Response"] == "Error"
        orig = srv.actions_named("Originate")
        assert [o["Channel"] for o in orig] == ["Local/100@x"] * 2 and orig[1]["Async"] == "false"
        await srv.push({"Event": "Hangup", "Uniqueid": "1.1", "Channel": "x"})
        await live.source.send_action({"Action": "Ping"})
        assert live.source.last_event_at is not None
    with pytest.raises(AmiNotConnected):
        await live.source.send_action({"Action": "Ping"})


async def test_async_originate_response_only_then_the_event_to_listeners() -> None:
    """The callback path: the Originate's Response at once; its OriginateResponse event later, to the listener."""
    async with AmiTestServer(secret=SECRET) as srv, live_source(srv) as live:
        await live.source.wait_ready()
        seen: list[dict[str, object]] = []
        live.source.on_event("OriginateResponse", seen.append)
        res = await live.source.send_action({"Action": "Originate", "Channel": "Local/100@x", "Async": "true",
                                             "Context": "qmon-survey-callback", "Exten": "s", "Priority": "1"},
                                            response_only=True)
        assert isinstance(res, dict) and res["Response"] == "Success"
        await live.source.send_action({"Action": "Ping"})  # the event was written before the Ping's answer
        assert [(e["Event"], e["Response"]) for e in seen] == [("OriginateResponse", "Success")]


async def test_a_listener_gets_events_the_tracker_never_reads() -> None:
    """The wire parser leaves untracked events unparsed, except those a listener asked for (even mid-session)."""
    async with AmiTestServer(secret=SECRET) as srv, live_source(srv) as live:
        await live.source.wait_ready()
        seen: list[dict[str, object]] = []
        await live.source.send_action({"Action": "Ping"})
        before = live.ingest.events
        await srv.push({"Event": "PeerStatus", "Peer": "PJSIP/1", "PeerStatus": "Reachable"})
        await live.source.send_action({"Action": "Ping"})
        live.source.on_event("PeerStatus", seen.append)
        await srv.push({"Event": "PeerStatus", "Peer": "PJSIP/2", "PeerStatus": "Unreachable"})
        await live.source.send_action({"Action": "Ping"})
        assert [e["Peer"] for e in seen] == ["PJSIP/2"]
        assert live.ingest.events - before == 2  # both counted, the one nobody listened to unparsed
        assert live.source._proto is not None and live.source._proto.parser.dropped_events == 1


async def test_a_foreign_list_answer_during_our_resync_is_skipped_yet_counted_as_received() -> None:
    """A list answer with another session's ActionID while ours is collected: not taken for ours (skipped), but
    still an event received, so the events counter keeps covering the whole stream."""
    never: list[dict[str, Any]] = []
    async with AmiTestServer(secret=SECRET, handlers={"CoreShowChannels": lambda a: never}) as srv, \
            live_source(srv) as live:
        for _ in range(500):  # QueueStatus answered, CoreShowChannels never: the resync stays collecting
            if live.source._resync.collecting and srv.actions_named("CoreShowChannels"):
                break
            await asyncio.sleep(0.01)
        assert live.source._resync.collecting
        before = live.ingest.events
        await srv.push({"Event": "QueueMember", "ActionID": "theirs-1", "Queue": "support", "Name": "Alice",
                        "Location": "PJSIP/alice", "Status": "1", "Paused": "0"})
        for _ in range(500):
            if live.ingest.skipped.get("foreign_answer:QueueMember"):
                break
            await asyncio.sleep(0.01)
        assert live.ingest.skipped == {"foreign_answer:QueueMember": 1}
        assert live.ingest.events - before == 1
        assert live.tracker.members.by_key == {}  # never taken for the resync's list


async def test_garbage_blocks_are_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """Random bytes and lines without a colon on the AMI connection: each block counted as ``unparseable`` in the
    skips (qmon_ami_skipped_events_total), one log line; the connection and real events go on."""
    caplog.set_level(logging.INFO)
    rng = random.Random(7)
    junk = [bytes(rng.randrange(256) for _ in range(500)).replace(b"\n", b"x") + b"\r\n\r\n" for _ in range(200)]
    tail = [b"no colon line\r\n\r\n", b"Event: \r\n\r\n", b":::\r\n\r\n"]
    async with AmiTestServer([*junk, *tail], secret=SECRET) as srv, live_source(srv) as live:
        await live.source.wait_ready()
        await _drain(live, srv)
        skipped = dict(live.ingest.skipped)
        connected = live.source.connected
    assert skipped.get("unparseable") == 203, skipped
    assert connected
    lines = [r.getMessage() for r in caplog.records if "unparseable" in r.getMessage()]
    assert len(lines) == 1, lines
