"""Callback surveys against Asterisk 22's real Originate replies and OriginateResponse events (issue 12, item 2).

Over real TCP, with the real daemon (:func:`tests.support.daemon.running`, survey callbacks enabled): its AMI
connection logs in to :class:`tests.support.originate_peer.OriginatePeer`, which answers as the recordings in
``fixtures/ami22`` show; the daemon's own wiring (``monitor/daemon.py``) sends the Originates and routes
``OriginateResponse`` and ``SoftHangupRequest`` to its callback scheduler; the survey channel's FastAGI connection
to the daemon's survey server is Asterisk 22's recorded one (``fixtures/agi22/e_callback*``) claiming the token.
Time is the daemon's virtual clock: the peer rings for the Originate's own ``Timeout`` on that clock, and
:meth:`Rig.at` ticks the daemon's scheduler at the time it sets (the daemon's own once-a-second tick reads the same
clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from monitor.ami.live import AmiSource
from monitor.core.records import CallClosed, CallRecord, Note, SurveyNote
from monitor.core.survey import PolicyConfig, SurveyPolicy, SurveyResultRecord
from monitor.daemon import Daemon
from monitor.replay import replay_files
from monitor.settings import SurveySettings
from monitor.survey.callback import CallbackConfig, CallbackScheduler
from monitor.survey.server import SurveyServer
from tests.support.agi_peer import Asterisk22, Caller, PeerLog, caller_of, load, run_peer
from tests.support.amiserver import AmiTestServer
from tests.support.calls import answered
from tests.support.daemon import daemon_settings, running
from tests.support.originate_peer import (
    AMI22,
    ANSWER,
    BUSY,
    NO_ANSWER,
    Clock,
    OriginatePeer,
    Outcome,
    poll,
    read_ami,
    recorded_originate_responses,
)

T0 = 1_900_000_000.0  # the daemon's (virtual) clock; the recorded calls carry their own PBX time
RETRY = 120.0
CHANNEL = "Local/{number}@lab-cbphone/n"
E_CALLBACK = load("e_callback")[0]  # the recorded survey channel: csat-callback, token 7fd9f6750487d001, pressed 4
LATE = load("e_callback_late_answer")[0]  # the recorded late answer qmon ended with goodbye


def recorded_call(name: str, caller: str) -> CallRecord:
    """The tracker's record of ``caller``'s call in a recorded AMI session."""
    (rec,) = [r for r in replay_files([AMI22 / f"{name}.qmon.ami"]).records if r.caller == caller]
    return rec


def prompts(log: PeerLog) -> list[str]:
    return [c.split()[2] for c in log.commands if c.startswith(("GET DATA", "STREAM FILE"))]


def callback_settings(tmp: Path, ami_port: int, **survey: Any) -> Any:
    """The daemon's settings: callbacks on, dialled through ``ami_port``, answered calls land on the survey server."""
    values: dict[str, Any] = {"callback_delay_s": 60.0, "callback_retry_delay_s": RETRY, "callback_max_attempts": 2}
    values |= {f"callback_{k}": v for k, v in survey.items()}  # retry_delay_s, max_attempts, ...
    s = SurveySettings(port=0, state_path=str(tmp / "state.db"), callback_enabled=True, callback_channel=CHANNEL,
                       **values)
    return dataclasses.replace(daemon_settings(tmp, ami_port), survey=s)


class Watch:
    """What the daemon's parts hand on: every survey answer and closed call its ingest emits, and the AMI events
    its source routed (listeners added after the daemon's own, so a routed event has reached the scheduler)."""

    def __init__(self, d: Daemon) -> None:
        self.results: list[SurveyResultRecord] = []
        self.closed: list[CallRecord] = []
        self.events: list[dict[str, str]] = []
        self.source: AmiSource = d.pbxs["default"].source
        d.pbxs["default"].ingest.sinks.append(self._notes)
        for name in ("OriginateResponse", "SoftHangupRequest"):
            self.source.on_event(name, lambda h: self.events.append({k: str(v) for k, v in h.items()}))

    def _notes(self, notes: list[Note]) -> None:
        for n in notes:
            if isinstance(n, SurveyNote) and n.answer is not None:
                self.results.append(n.answer)
            elif isinstance(n, CallClosed):
                self.closed.append(n.record)

    async def wait_events(self, n: int, timeout_s: float = 5.0) -> None:
        """Until ``n`` routed events arrived."""
        await poll(lambda: len(self.events) >= n, timeout_s, f"{n} routed events")


class Rig:
    """The daemon (scheduler, FastAGI server, AMI wiring) against the Originate peer, on one virtual clock."""

    def __init__(self, tmp: Path, script: dict[str, list[Outcome]], fold: bool = False, **survey: Any) -> None:
        self.tmp = tmp
        self.clock = Clock(T0)
        self.fold = fold
        self.survey = survey
        self.peer = OriginatePeer(self.clock, script)
        self._stack = contextlib.AsyncExitStack()

    async def start(self) -> None:
        await self.peer.start()
        self._stack.push_async_callback(self.peer.close)
        ack = self.survey.pop("ack_timeout_s", None)
        self.d = await self._stack.enter_async_context(
            running(callback_settings(self.tmp, self.peer.port, **self.survey), clock=self.clock))
        assert self.d.survey is not None and self.d.survey.callbacks is not None
        self.sched: CallbackScheduler = self.d.survey.callbacks
        self.server: SurveyServer = self.d.survey.server
        self.watch = Watch(self.d)
        self.results = self.watch.results
        await poll(lambda: self.watch.source.connected, what="AMI login")
        if self.fold:
            # Wired wrong, as live: the whole folded answer awaited (panoramisk holds the action open for the event).
            source = self.watch.source
            self.sched.send_action = lambda action: source.send_action(action)
        if ack is not None:
            self.sched.config = dataclasses.replace(self.sched.config, ack_timeout_s=ack)

    async def close(self) -> None:
        await self._stack.aclose()

    async def at(self, t: float) -> None:
        """The daemon's loop at ``t``: Asterisk's events due by then reach the scheduler, then one tick."""
        before = len(self.watch.events)
        sent = await self.peer.advance(t)
        if self.fold:  # panoramisk swallows the events of actions it holds open: nothing to wait for
            await asyncio.sleep(0.01)
        else:
            await self.watch.wait_events(before + sent)
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
        assert self.d.survey_port
        log = await run_peer(self.d.survey_port, chunks, Asterisk22(caller))
        # The result is handed on after the channel is back in the dialplan: wait for the session to end.
        await poll(lambda: not self.server._sessions, what="the survey session to end")
        return log


@pytest.fixture
async def rig(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    params = dict(getattr(request, "param", {}))
    r = Rig(tmp_path, params.pop("script", {}), **params)
    try:
        await r.start()
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


@with_script(script={"5551001": [ANSWER]})
async def test_panoramisk_folds_the_event_into_the_reply_unless_response_only(rig: Rig) -> None:
    """The live AttributeError: panoramisk's default keeps the action open for the OriginateResponse; the daemon's
    AMI source sends callback Originates ``response_only`` so the event reaches its listeners."""
    source = rig.watch.source
    seen: list[str] = []
    source.on_event("OriginateResponse", lambda h: seen.append(str(h["ActionID"])))
    act = {"Action": "Originate", "Channel": "Local/5551001@x/n", "Context": "c", "Exten": "s",
           "Priority": "1", "Async": "true", "Timeout": "30000"}
    folded = asyncio.ensure_future(source.send_action(dict(act, ActionID="qmon-cb-aa-1")))
    await poll(lambda: rig.peer.originates())
    await rig.peer.advance(T0 + 2)
    async with asyncio.timeout(5):
        got = await folded
    assert isinstance(got, list) and [m.get("Event") for m in got] == [None, "OriginateResponse"]
    reply = await source.send_action(dict(act, ActionID="qmon-cb-bb-1"), response_only=True)
    assert isinstance(reply, dict) and reply["Message"] == "Originate successfully queued"
    await rig.peer.advance(T0 + 10)
    await poll(lambda: seen)
    assert seen == ["qmon-cb-bb-1"]  # only the reply-only action lets the event through
    assert rig.sched.stats["stray_events"] == 1  # and the daemon routed it to its scheduler (not one of its own)


@with_script(script={"5551001": [ANSWER]})
async def test_the_daemon_dials_response_only(rig: Rig) -> None:
    """The daemon's own send: the scheduler holds the reply alone, the event decides the attempt."""
    call = answered("L9", caller="5551001", completion="caller", end_ts=1.0)
    token = rig.sched.offer(call, T0, pbx_now=2.0)
    assert token is not None
    await rig.run_until(T0 + 60)
    assert rig.sched.in_flight() == [f"qmon-cb-{token}-1"] and rig.sched.jobs[token].attempt is not None
    assert rig.sched.jobs[token].attempt.acked  # type: ignore[union-attr]
    await rig.at(T0 + 62)
    assert rig.sched.stats["answered"] == 1 and rig.sched.stats["stray_events"] == 0


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
    limit = rig.sched.config.answer_timeout_s + rig.sched.config.grace_s
    assert all(b - a >= limit for (a, _), (b, _) in itertools.pairwise(sent))
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
    SoftHangupRequest Cause 4 (AST_SOFTHANGUP_SHUTDOWN) tells it apart. Streamed over AMI into the daemon."""
    clock = Clock(T0)
    srv = AmiTestServer.from_transcript(AMI22 / "g_restart.qmon.ami", mode="chunks", seed=3)
    port = (await srv.start()).port
    await srv.close()  # listening only once the test watches the daemon's parts: it must see every closed call
    async with running(callback_settings(tmp_path, port), clock=clock) as d:
        assert d.survey is not None and d.survey.callbacks is not None
        sched = d.survey.callbacks
        watch = Watch(d)
        async with contextlib.AsyncExitStack() as stack:
            await srv.start(port)  # the daemon's AMI connection retries until it logs in
            stack.push_async_callback(srv.close)
            await srv.wait_streamed()
            await watch.wait_events(sum(1 for m in read_ami("g_restart") if m.get("Event") == "SoftHangupRequest"))
            clock.t += 10  # past the late-event grace: the daemon's tick makes the hung-up calls final
            await poll(lambda: any(r.caller == "5553601" for r in watch.closed), what="the cut call closed")
            (cut,) = [r for r in watch.closed if r.caller == "5553601"]
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
