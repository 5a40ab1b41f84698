"""Callback surveys against Asterisk 22's real Originate replies and OriginateResponse events (issue 12, item 2).

Over real TCP: :class:`tests.support.originate_peer.OriginatePeer` answers as the recordings in ``fixtures/ami22`` show,
panoramisk is the client wired as the daemon must wire it (:class:`tests.support.originate_peer.Wiring`), and the survey
channel's FastAGI connection is Asterisk 22's recorded one (``fixtures/agi22/e_callback*``) claiming the token.
Time is a virtual daemon clock: the peer rings for the Originate's own ``Timeout`` on that clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from monitor.core.ingest import Ingest, closed_records
from monitor.core.records import CallRecord
from monitor.core.survey import PolicyConfig, SurveyPolicy, SurveyResultRecord
from monitor.core.tracker import CallTracker
from monitor.replay import replay_files
from monitor.survey.callback import CallbackConfig, CallbackScheduler
from monitor.survey.server import SurveyServer
from monitor.survey.state import SurveyState
from tests.support.agi_peer import Asterisk22, Caller, PeerLog, caller_of, load, run_peer
from tests.support.amiserver import AmiTestServer
from tests.support.calls import answered
from tests.support.originate_peer import (
    AMI22,
    ANSWER,
    BUSY,
    NO_ANSWER,
    Clock,
    OriginatePeer,
    Outcome,
    Wiring,
    poll,
    read_ami,
    recorded_originate_responses,
)

T0 = 1_900_000_000.0  # the daemon's (virtual) clock; the recorded calls carry their own PBX time
RETRY = 120.0
E_CALLBACK = load("e_callback")[0]  # the recorded survey channel: csat-callback, token 7fd9f6750487d001, pressed 4
LATE = load("e_callback_late_answer")[0]  # the recorded late answer qmon ended with goodbye


def recorded_call(name: str, caller: str) -> CallRecord:
    """The tracker's record of ``caller``'s call in a recorded AMI session."""
    (rec,) = [r for r in replay_files([AMI22 / f"{name}.qmon.ami"]).records if r.caller == caller]
    return rec


def prompts(log: PeerLog) -> list[str]:
    return [c.split()[2] for c in log.commands if c.startswith(("GET DATA", "STREAM FILE"))]


class Rig:
    """Scheduler + FastAGI server + AMI peer + panoramisk wiring, on one virtual clock."""

    def __init__(self, tmp: Path, script: dict[str, list[Outcome]], fold: bool = False, **cfg: Any) -> None:
        self.clock = Clock(T0)
        self.fold = fold
        self.peer = OriginatePeer(self.clock, script)
        self.results: list[SurveyResultRecord] = []
        self.state = SurveyState(tmp / "state.db")
        self.policy = SurveyPolicy(PolicyConfig())
        self.wiring: Wiring | None = None
        self.cfg = CallbackConfig(**{"channel": "Local/{number}@lab-cbphone/n", "delay_s": 60.0,
                                     "retry_delay_s": RETRY, "max_attempts": 2, **cfg})
        self.sched = CallbackScheduler(self.cfg, self.policy, self._send, self.results.append, cooldown=self.state,
                                       optout=self.state)
        self.server = SurveyServer(self.policy, lookup=lambda u, lid: None, on_result=self.results.append, port=0,
                                   callbacks=self.sched, cooldown=self.state, optout=self.state, clock=self.clock)

    async def _send(self, action: dict[str, Any]) -> Any:
        assert self.wiring is not None
        return await self.wiring.send_action(action)

    async def start(self) -> None:
        await self.peer.start()
        await self.server.start()
        self.wiring = Wiring(self.peer.port, self.clock, fold=self.fold)
        await self.wiring.connect()
        self.wiring.attach(self.sched)

    async def close(self) -> None:
        if self.wiring is not None:
            self.wiring.close()
        await self.server.close()
        await self.peer.close()
        self.state.close()

    async def at(self, t: float) -> None:
        """The daemon's loop at ``t``: Asterisk's events due by then reach the scheduler, then one tick."""
        assert self.wiring is not None
        before = len(self.wiring.events)
        sent = await self.peer.advance(t)
        if self.fold:  # panoramisk swallows the events of actions it holds open: nothing to wait for
            await asyncio.sleep(0.01)
        else:
            await self.wiring.wait_events(before + sent)
        await self.sched.tick(t)

    async def run_until(self, end: float, step: float = 1.0) -> None:
        t = self.clock.t
        while t < end:
            t = min(end, t + step)
            await self.at(t)

    async def survey_channel(self, token: str, rec: Any = E_CALLBACK, keys: list[str] | None = None) -> PeerLog:
        """Asterisk's AGI() on the answered callback channel, with its recorded headers, claiming ``token``."""
        recorded_token = rec.headers["agi_arg_1"]
        chunks = [c.replace(recorded_token, token) for c in rec.header_chunks]
        caller = Caller(keys=keys) if keys is not None else caller_of(rec)
        return await run_peer(self.server.port, chunks, Asterisk22(caller))


@pytest.fixture
async def rig(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    params = dict(getattr(request, "param", {}))
    r = Rig(tmp_path, params.pop("script", {}), **params)
    await r.start()
    try:
        yield r
    finally:
        await r.close()


def with_script(**kw: Any) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("rig", [kw], indirect=True)


CALL = recorded_call("e_callback", "5553301")  # answered by agent1, 4 s of talk, the caller hung up


# -- the recordings ------------------------------------------------------------------------------------------


def test_recorded_shapes_and_the_live_overlap() -> None:
    """What the peer copies, and the defect the live run shows: attempt 2 dialled while attempt 1 still rang."""
    evs = {(e["Response"], e["Reason"]): e for e in recorded_originate_responses()}
    assert set(evs) == {("Success", "4"), ("Failure", "3")}
    assert evs[("Failure", "3")]["Uniqueid"] == "<unknown>"
    assert str(evs[("Failure", "3")]["Channel"]).endswith("@lab-cbphone/n")  # the requested channel
    assert str(evs[("Success", "4")]["Uniqueid"]).startswith("17960")
    for name in ("e_callback_noanswer", "e_callback_late_answer"):
        msgs = read_ami(name)
        dials = [float(str(m["Timestamp"])) for m in msgs if m.get("Event") == "Newchannel"
                 and "@lab-cbphone-" in str(m.get("Channel")) and str(m.get("Channel")).endswith(";1")]
        ends = [float(str(m["Timestamp"])) for m in msgs if m.get("Event") == "OriginateResponse"
                and str(m.get("ActionID", "")).startswith("qmon-cb-")]
        assert len(dials) == 2 and dials[1] < ends[0]  # live: the second call rang before the first ended
        assert round(ends[0] - dials[0]) == 30  # Asterisk rang the Originate's 30 s Timeout


async def test_panoramisk_folds_the_event_into_the_reply_unless_as_list_is_false(tmp_path: Path) -> None:
    """The live AttributeError: panoramisk's default keeps the action open for the OriginateResponse."""
    clock = Clock(T0)
    peer = await OriginatePeer(clock, {"5551001": [ANSWER]}).start()
    w = Wiring(peer.port, clock)
    try:
        await w.connect()
        seen: list[str] = []
        w.manager.register_event("OriginateResponse", lambda m, e: seen.append(str(e["ActionID"])))
        act = {"Action": "Originate", "Channel": "Local/5551001@x/n", "Context": "c", "Exten": "s",
               "Priority": "1", "Async": "true", "Timeout": "30000"}
        folded = w.manager.send_action(dict(act, ActionID="qmon-cb-aa-1"))
        await poll(lambda: peer.originates())
        await peer.advance(T0 + 2)
        async with asyncio.timeout(5):
            got = await folded
        assert isinstance(got, list) and [m.get("Event") for m in got] == [None, "OriginateResponse"]
        reply = await w.send_action(dict(act, ActionID="qmon-cb-bb-1"))
        assert reply["Message"] == "Originate successfully queued"
        await peer.advance(T0 + 10)
        await poll(lambda: seen)
        assert seen == ["qmon-cb-bb-1"]  # only the reply-only action lets the event through
    finally:
        w.close()
        await peer.close()


# -- answered ------------------------------------------------------------------------------------------------


@with_script(script={"5553301": [ANSWER]})
@pytest.mark.parametrize("event_first", [True, False])
async def test_answered_callback_is_surveyed_once(rig: Rig, event_first: bool) -> None:
    token = rig.sched.offer(CALL, T0, language="en", pbx_now=CALL.end_ts + 5)
    assert token is not None
    await rig.run_until(T0 + 60)
    (o,) = rig.peer.originates()
    assert (o["ActionID"], o["Timeout"], o["Async"]) == (f"qmon-cb-{token}-1", "30000", "true")
    assert o["Variable"] == [f"QMON_SURVEY_TOKEN={token}", "QMON_QUEUE=support", "QMON_LANG=en"]
    if event_first:
        await rig.at(T0 + 62)  # Reason 4 arrives, then the survey channel connects (recorded: 1.4 ms later)
        assert rig.sched.stats["answered"] == 1
    log = await rig.survey_channel(token)
    await rig.run_until(T0 + 400)  # the event (if late) and every later tick change nothing
    assert prompts(log) == ["qmon/en/callback-intro", "qmon/en/csat-question", "qmon/en/thanks"]
    (r,) = rig.results
    assert (r.status, r.csat, r.source, r.linkedid, r.caller) == ("completed", 4, "callback", CALL.linkedid,
                                                                   "5553301")
    assert len(rig.peer.originates()) == 1 and rig.sched.jobs == {} and rig.sched.in_flight() == []
    assert rig.sched.stats["stray_events"] == (0 if event_first else 1)


# -- no answer, busy: retried only after the attempt ended ----------------------------------------------------


@with_script(script={"5553301": [NO_ANSWER, ANSWER]})
async def test_no_answer_is_retried_after_asterisk_stopped_ringing(rig: Rig) -> None:
    token = rig.sched.offer(CALL, T0, pbx_now=CALL.end_ts)
    assert token is not None
    await rig.run_until(T0 + 60)
    assert len(rig.peer.originates()) == 1
    await rig.run_until(T0 + 60 + 29)  # still ringing: the old code gave up after 10 s and dialled again
    assert len(rig.peer.originates()) == 1 and rig.sched.in_flight() == [f"qmon-cb-{token}-1"]
    await rig.run_until(T0 + 91)  # Reason 3 at 30.03 s
    assert rig.sched.in_flight() == [] and rig.results == []
    await rig.run_until(T0 + 90 + RETRY)
    assert len(rig.peer.originates()) == 1  # the retry delay counts from the attempt's end
    await rig.run_until(T0 + 91 + RETRY)
    assert [o["ActionID"] for o in rig.peer.originates()] == [f"qmon-cb-{token}-{n}" for n in (1, 2)]
    responses = [t for t, what, _, _ in rig.peer.timeline if what == "OriginateResponse"]
    dials = [t for t, what, _, _ in rig.peer.timeline if what == "Originate"]
    assert dials[1] - responses[0] >= RETRY
    await rig.run_until(T0 + 94 + RETRY)
    log = await rig.survey_channel(token)
    assert prompts(log)[-1] == "qmon/en/thanks"
    assert [(r.status, r.csat) for r in rig.results] == [("completed", 4)]
    assert rig.peer.overlaps() == []


@with_script(script={"5553301": [BUSY]})
async def test_busy_every_attempt_is_recorded_unreachable_once(rig: Rig) -> None:
    rig.sched.offer(CALL, T0, pbx_now=CALL.end_ts)
    await rig.run_until(T0 + 60 + 2 + RETRY + 2 + 600, step=2.0)
    assert len(rig.peer.originates()) == 2
    (r,) = rig.results
    assert (r.status, r.reason, r.linkedid) == ("unreachable", "originate busy", CALL.linkedid)
    assert rig.peer.overlaps() == [] and rig.sched.jobs == {}


@with_script(script={"5553301": [Outcome("congestion", 0.5), Outcome("refuse")]})
async def test_congestion_then_a_refused_originate(rig: Rig) -> None:
    rig.sched.offer(CALL, T0, pbx_now=CALL.end_ts)
    await rig.run_until(T0 + 60 + RETRY + 5)
    (r,) = rig.results
    assert (r.status, r.reason) == ("unreachable", "Originate refused: Permission denied")
    assert rig.sched.stats["failed"] == 2


# -- never two in flight -------------------------------------------------------------------------------------


@with_script(script={"5553301": [Outcome("lost")], "5551002": [NO_ANSWER]}, retry_delay_s=1.0, max_attempts=3)
async def test_never_two_attempts_in_flight_even_without_events(rig: Rig) -> None:
    """No OriginateResponse ever arrives (lost): the attempt is held for the ring limit + grace, not 10 s."""
    assert rig.sched.offer(CALL, T0, pbx_now=CALL.end_ts) is not None
    other = answered("L2", caller="5551002", completion="caller", end_ts=CALL.end_ts)
    assert rig.sched.offer(other, T0, pbx_now=CALL.end_ts) is not None
    again = answered("L3", caller="5553301", completion="caller", end_ts=CALL.end_ts)
    assert rig.sched.offer(again, T0, pbx_now=CALL.end_ts) is None  # one job per number
    await rig.run_until(T0 + 60 + 3 * 50, step=1.0)
    sent = [(t, n) for t, what, _, n in rig.peer.timeline if what == "Originate" and n == "5553301"]
    assert len(sent) == 3
    assert all(b - a >= rig.cfg.answer_timeout_s + rig.cfg.grace_s for (a, _), (b, _) in itertools.pairwise(sent))
    assert rig.peer.overlaps() == []
    assert [(r.caller, r.status, r.reason) for r in rig.results] == [
        ("5551002", "unreachable", "originate no_answer"), ("5553301", "unreachable", "no OriginateResponse in time")]


@with_script(script={"5553301": [NO_ANSWER, ANSWER]}, fold=True, ack_timeout_s=0.2)
async def test_wired_wrong_as_live_still_never_two_in_flight(rig: Rig) -> None:
    """panoramisk's default (the live wiring): no reply in time, events swallowed; attempts end by the ring limit."""
    token = rig.sched.offer(CALL, T0, pbx_now=CALL.end_ts)
    assert token is not None
    await rig.run_until(T0 + 60 + 44, step=4.0)
    assert rig.sched.in_flight() == [f"qmon-cb-{token}-1"] and rig.results == []
    await rig.run_until(T0 + 60 + 45 + RETRY + 3, step=4.0)
    assert len(rig.peer.originates()) == 2 and rig.peer.overlaps() == []
    log = await rig.survey_channel(token)
    assert prompts(log)[-1] == "qmon/en/thanks"
    assert [(r.status, r.csat) for r in rig.results] == [("completed", 4)]


# -- late answer ---------------------------------------------------------------------------------------------


@with_script(script={"5558888": [Outcome("lost")]}, max_attempts=1)
async def test_late_answer_after_give_up_hears_goodbye_and_is_recorded_once(rig: Rig) -> None:
    call = recorded_call("e_callback_late_answer", "5558888")
    token = rig.sched.offer(call, T0, pbx_now=call.end_ts)
    assert token is not None
    await rig.run_until(T0 + 60 + 46)
    assert [(r.status, r.reason) for r in rig.results] == [("unreachable", "no OriginateResponse in time")]
    log = await rig.survey_channel(token, LATE)  # the recorded late answer, now after qmon gave up
    assert prompts(log) == ["qmon/en/goodbye"] and log.variables["QMON_SURVEY_STATUS"] == "not_eligible"
    assert len(rig.results) == 1 and rig.server.stats["callbacks_declined"] == 1
    log = await rig.survey_channel(token, LATE)  # and again: still once
    assert len(rig.results) == 1


@with_script(script={"5558888": [Outcome("lost"), ANSWER]}, max_attempts=2)
async def test_late_answer_while_the_retry_waits_is_surveyed_and_the_retry_cancelled(rig: Rig) -> None:
    call = recorded_call("e_callback_late_answer", "5558888")
    token = rig.sched.offer(call, T0, pbx_now=call.end_ts)
    assert token is not None
    await rig.run_until(T0 + 60 + 46)  # attempt 1 given up for lack of news; the retry waits RETRY s
    assert rig.sched.in_flight() == [] and rig.results == []
    log = await rig.survey_channel(token, LATE, keys=["5"])
    assert prompts(log)[0] == "qmon/en/callback-intro"
    await rig.run_until(T0 + 60 + 46 + RETRY + 60)
    assert len(rig.peer.originates()) == 1
    assert [(r.status, r.csat) for r in rig.results] == [("completed", 5)]
    assert rig.sched.stats["late_claims"] == 1


# -- calls that must not be called back ---------------------------------------------------------------------


async def test_calls_cut_by_a_restart_are_not_offered(tmp_path: Path) -> None:
    """g_restart: the restart ends the call with AgentComplete Reason caller and ordinary Hangups; only
    SoftHangupRequest Cause 4 (AST_SOFTHANGUP_SHUTDOWN) tells it apart. Streamed over AMI, wired as the daemon."""
    clock = Clock(T0)
    sched = CallbackScheduler(CallbackConfig(channel="Local/{number}@x/n"), SurveyPolicy(PolicyConfig()),
                              _never_sends, lambda r: None)
    tracker = CallTracker()
    ingest = Ingest(tracker)
    closed: list[CallRecord] = []
    async with AmiTestServer.from_transcript(AMI22 / "g_restart.qmon.ami", mode="chunks", seed=3) as srv:
        w = Wiring(srv.port, clock)
        w.attach(sched)

        def feed(_: Any, message: Any) -> None:
            for rec in closed_records(ingest.feed({str(k): v for k, v in message.items()}, clock())):
                closed.append(rec)
                sched.offer(rec, clock(), pbx_now=tracker.pbx_time(clock()))

        w.manager.register_event("*", feed)
        await w.connect()
        await srv.wait_streamed()
        await w.wait_events(1)
        clock.t += 10  # past the late-event grace: the daemon's tick makes the hung-up calls final
        for rec in closed_records(ingest.tick(clock())):
            closed.append(rec)
            sched.offer(rec, clock(), pbx_now=tracker.pbx_time(clock()))
        await poll(lambda: any(r.caller == "5553601" for r in closed))
        w.close()
    (cut,) = [r for r in closed if r.caller == "5553601"]
    seg = cut.segments[-1]
    assert (seg.completion, seg.talk_s) == ("caller", 6.0)  # it looks like a caller hanging up on the agent
    assert sched.jobs == {} and sched.stats["offered"] == 0
    assert sched.offer(cut, clock()) is None  # and stays refused


@pytest.mark.parametrize("closed_by", ["gap", "eof", "shutdown", "stale"])
def test_calls_not_seen_to_their_hangup_are_not_offered(closed_by: str) -> None:
    sched = CallbackScheduler(CallbackConfig(channel="Local/{number}@x/n"), SurveyPolicy(PolicyConfig()),
                              _never_sends, lambda r: None)
    assert sched.offer(dataclasses.replace(CALL, closed_by=closed_by), T0) is None
    assert sched.offer(CALL, T0) is not None  # the same call seen to its hang-up is


def test_zero_seconds_of_talk_is_not_offered() -> None:
    sched = CallbackScheduler(CallbackConfig(channel="Local/{number}@x/n"), SurveyPolicy(PolicyConfig()),
                              _never_sends, lambda r: None)
    seg = dataclasses.replace(CALL.segments[-1], talk_s=0.0)
    assert sched.offer(dataclasses.replace(CALL, segments=(seg,)), T0) is None
    assert sched.offer(CALL, T0) is not None


async def _never_sends(action: dict[str, Any]) -> dict[str, str]:
    raise AssertionError(f"nothing may be dialled: {action}")
