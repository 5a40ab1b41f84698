"""Callback surveys through the real AMI client to the AMI test server: originate shape, quiet hours, opt-out,
retries."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any

import pytest

from monitor.ami.live import AmiSource
from monitor.ami.wire import Headers
from monitor.core.ingest import Ingest
from monitor.core.survey import PolicyConfig, SurveyPolicy, SurveyResultRecord
from monitor.core.tracker import CallTracker
from monitor.settings import AmiSettings
from monitor.survey.callback import CallbackConfig, CallbackScheduler
from monitor.survey.server import SurveyServer
from monitor.survey.state import SurveyState
from tests.support.agiclient import agi_headers, run_caller
from tests.support.amiserver import AmiTestServer
from tests.support.calls import answered

T0 = datetime(2025, 3, 3, 10, 0).timestamp()  # local 10:00


class Rig:
    def __init__(self, ami: AmiTestServer, source: AmiSource, state: SurveyState, **cfg: Any) -> None:
        self.ami, self.source, self.state = ami, source, state
        self.results: list[SurveyResultRecord] = []
        self.policy = SurveyPolicy(PolicyConfig(quiet_hours=(dtime(21), dtime(8))))
        config = CallbackConfig(channel="PJSIP/{number}@trunk", caller_id='"Survey" <100>', delay_s=60,
                                retry_delay_s=120, **cfg)
        self.sched = CallbackScheduler(config, self.policy, functools.partial(source.send_action, response_only=True),
                                       self.results.append, cooldown=state, optout=state)

    def originates(self) -> list[Headers]:
        """The Originate actions the AMI server received, in order."""
        return self.ami.actions_named("Originate")


def scripted_originates(results: list[str]) -> Callable[[Headers], list[Headers]]:
    """Originate answers in turn from ``results`` ("Success" or "Error"), then Success."""

    def answer(action: Headers) -> list[Headers]:
        ok = (results.pop(0) if results else "Success") == "Success"
        return [{"Response": "Success", "Message": "Originate successfully queued"} if ok
                else {"Response": "Error", "Message": "Originate failed"}]

    return answer


@pytest.fixture
async def rig(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    """The scheduler sending through the real AMI client (AmiSource) to the AMI test server."""
    params = dict(getattr(request, "param", {}))
    results = params.pop("originate_results", None)
    handlers = {"Originate": scripted_originates(list(results))} if results else None
    async with AmiTestServer(handlers=handlers) as ami:
        source = AmiSource(AmiSettings(port=ami.port, secret="secret", connect_timeout_s=2.0, resync_timeout_s=2.0),
                           Ingest(CallTracker()))
        task = asyncio.create_task(source.run(), name="ami-under-test")
        await source.wait_ready()
        state = SurveyState(tmp_path / "state.db")
        yield Rig(ami, source, state, **params)
        state.close()
        await source.close()
        await asyncio.wait_for(task, 5)


def caller_hung_up(lid: str = "L1", caller: str = "5551001") -> Any:
    return answered(lid, caller=caller, completion="caller", end_ts=T0)


async def test_originate_shape_then_the_survey_runs(rig: Rig) -> None:
    token = rig.sched.offer(caller_hung_up(), T0, language="pl")
    assert token is not None
    await rig.sched.tick(T0 + 30)
    assert rig.originates() == []  # not before the delay
    await rig.sched.tick(T0 + 60)
    (o,) = rig.originates()
    assert o["Channel"] == "PJSIP/5551001@trunk"
    assert (o["Context"], o["Exten"], o["Priority"], o["Async"]) == ("qmon-survey-callback", "s", "1", "true")
    assert o["CallerID"] == '"Survey" <100>' and o["Timeout"] == "30000"
    assert o["Variable"] == [f"QMON_SURVEY_TOKEN={token}", "QMON_QUEUE=support", "QMON_LANG=pl"]
    # The callee answers; the dialplan connects to the FastAGI server with the token.
    server = SurveyServer(rig.policy, lookup=lambda u, lid: None, on_result=rig.results.append, port=0,
                          callbacks=rig.sched, cooldown=rig.state, optout=rig.state, clock=lambda: T0 + 70,
                          local=lambda ts: dtime(10))
    await server.start()
    try:
        s = await run_caller(server.port, agi_headers("C1", "", script="csat-callback") | {"agi_arg_1": token}, ["2"])
    finally:
        await server.close()
    assert s.prompts() == ["qmon/pl/callback-intro", "qmon/pl/csat-question", "qmon/pl/thanks"]
    (r,) = rig.results
    assert (r.source, r.status, r.csat, r.linkedid, r.agent, r.caller) == (
        "callback", "completed", 2, "L1", "agent1", "5551001")
    assert rig.sched.jobs == {} and rig.state.last_surveyed("5551001") == T0 + 70
    again = rig.sched.claim(token)  # a token works once; a second answer is declined (goodbye, no record)
    assert again is not None and again.decline == "claimed"
    assert rig.sched.claim("unknown") is None


async def test_only_callers_who_hung_up_before_the_survey(rig: Rig) -> None:
    assert rig.sched.offer(answered("L2", completion="agent", end_ts=T0), T0) is None
    assert rig.sched.offer(answered("L3", caller=None, completion="caller", end_ts=T0), T0) is None
    assert rig.sched.offer(caller_hung_up("L4"), T0) is not None
    assert rig.sched.offer(caller_hung_up("L4"), T0) is None  # once per call


async def test_quiet_hours_postpone_the_callback(rig: Rig) -> None:
    evening = datetime(2025, 3, 3, 20, 59, 30).timestamp()
    assert rig.sched.offer(caller_hung_up(), evening) is not None
    await rig.sched.tick(evening + 60)  # 21:00:30: quiet
    assert rig.originates() == []
    (job,) = rig.sched.jobs.values()
    assert job.due == datetime(2025, 3, 4, 8, 0).timestamp()
    await rig.sched.tick(datetime(2025, 3, 4, 7, 59).timestamp())
    assert rig.originates() == []
    await rig.sched.tick(job.due)
    assert len(rig.originates()) == 1


async def test_opt_out_list_is_respected(rig: Rig) -> None:
    rig.state.add_optout("5551001", T0)
    assert rig.sched.offer(caller_hung_up(), T0) is None
    assert rig.sched.offer(caller_hung_up("L2", caller="5551002"), T0) is not None
    rig.state.add_optout("555-1002", T0 + 1)  # opted out while the job waited
    await rig.sched.tick(T0 + 60)
    assert rig.originates() == []
    assert [(r.status, r.reason) for r in rig.results] == [("not_eligible", "opted_out")]


@pytest.mark.parametrize("rig", [{"originate_results": ["Error", "Error", "Error"], "max_attempts": 3}],
                         indirect=True)
async def test_failed_originate_is_retried_up_to_the_limit_then_recorded(rig: Rig) -> None:
    rig.sched.offer(caller_hung_up(), T0)
    await rig.sched.tick(T0 + 60)
    await rig.sched.tick(T0 + 100)  # retry delay (120 s) not over
    assert len(rig.originates()) == 1 and rig.results == []
    await rig.sched.tick(T0 + 180)
    await rig.sched.tick(T0 + 300)
    await rig.sched.tick(T0 + 1000)
    tok = str(rig.originates()[0]["ActionID"]).split("-")[2]
    assert [o["ActionID"] for o in rig.originates()] == [f"qmon-cb-{tok}-{n}" for n in (1, 2, 3)]
    (r,) = rig.results
    assert (r.status, r.reason, r.source, r.linkedid) == (
        "unreachable", "Originate refused: Originate failed", "callback", "L1")
    assert rig.sched.jobs == {}


@pytest.mark.parametrize("rig", [{"max_attempts": 2}], indirect=True)
async def test_no_answer_and_never_connected_count_as_failed_attempts(rig: Rig) -> None:
    rig.sched.offer(caller_hung_up(), T0)
    await rig.sched.tick(T0 + 60)
    (o,) = rig.originates()
    # Asterisk reports the no-answer later as an OriginateResponse event (Async: true).
    rig.sched.on_originate_response({"Event": "OriginateResponse", "ActionID": o["ActionID"],
                                     "Response": "Failure", "Reason": "3"}, T0 + 90)
    await rig.sched.tick(T0 + 210)
    assert len(rig.originates()) == 2
    await rig.sched.tick(T0 + 210 + 44)  # answer timeout 30 + grace 15 not over
    assert rig.results == []
    await rig.sched.tick(T0 + 210 + 46)  # no OriginateResponse by then (Asterisk stopped ringing at 30 s)
    assert [(r.status, r.reason) for r in rig.results] == [("unreachable", "no OriginateResponse in time")]


async def test_answered_but_the_survey_channel_never_connects(rig: Rig) -> None:
    rig.sched.offer(caller_hung_up(), T0)
    await rig.sched.tick(T0 + 60)
    (o,) = rig.originates()
    rig.sched.on_originate_response({"Event": "OriginateResponse", "ActionID": o["ActionID"],
                                     "Response": "Success", "Reason": "4"}, T0 + 65)
    await rig.sched.tick(T0 + 65 + 14)
    assert rig.results == []
    await rig.sched.tick(T0 + 65 + 15)  # answered, but no FastAGI connection within the grace: no retry
    assert [(r.status, r.reason) for r in rig.results] == [("unreachable", "answered; survey never connected")]
    await rig.sched.tick(T0 + 1000)
    assert len(rig.originates()) == 1


@pytest.mark.parametrize("rig", [{"rate_per_min": 2}], indirect=True)
async def test_rate_limit(rig: Rig) -> None:
    for i in range(3):
        rig.sched.offer(caller_hung_up(f"L{i}", caller=f"555100{i}"), T0)
    await rig.sched.tick(T0 + 60)
    assert len(rig.originates()) == 2
    await rig.sched.tick(T0 + 119)
    assert len(rig.originates()) == 2
    await rig.sched.tick(T0 + 120)
    assert len(rig.originates()) == 3
