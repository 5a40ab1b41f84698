"""qmon's survey server against Asterisk 22's recorded FastAGI behaviour (issue 12), over real TCP.

The peer (:mod:`tests.support.agi_peer`) answers as the live Asterisk 22 did; the first test proves that on every
recorded command. Then: every recorded conversation ends with the outcome the recording says; a slow peer is
waited for while a slow qmon says goodbye at once; NPS "10#"; the time limit kept by each command; the CDR trace.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import time as dtime
from pathlib import Path

import pytest

from monitor.core.conversation import PromptDurations
from monitor.core.records import CallRecord
from monitor.core.survey import PolicyConfig, SurveyPolicy, SurveyResultRecord
from monitor.survey.collaborators import CallbackTarget
from monitor.survey.durations import default_durations, load_durations, parse_durations
from monitor.survey.server import SurveyServer
from tests.support.agi_peer import (
    DEAD,
    FIXTURES,
    SCENARIOS,
    Asterisk22,
    Caller,
    PeerLog,
    Recorded,
    VirtualClock,
    caller_of,
    conversations,
    load,
    run_peer,
)
from tests.support.calls import answered

DURATIONS = load_durations(FIXTURES / "durations.json")
A_CSAT4 = load("a_csat4")[0]
HEADERS = A_CSAT4.header_chunks


class Claims:
    """The callback scheduler's side the server needs: token -> the original call, once."""

    def __init__(self, recs: Sequence[Recorded]) -> None:
        self.targets = {
            r.headers["agi_arg_1"]: CallbackTarget(answered(r.headers["agi_arg_1"], r.headers["agi_callerid"]),
                                                   r.headers["agi_callerid"], "en")
            for r in recs if r.scenario != "e_callback_late_answer"}

    def claim(self, token: str) -> CallbackTarget | None:
        return self.targets.pop(token, None)


class Rig:
    """A real SurveyServer on a free port; calls known by linkedid; results collected."""

    def __init__(self, recs: Sequence[Recorded] = (), *, calls: dict[str, CallRecord] | None = None,
                 cfg: PolicyConfig | None = None, **kw: object) -> None:
        self.calls = dict(calls or {})
        for r in recs:
            h = r.headers
            if h["agi_network_script"] == "csat":
                self.calls[h["agi_arg_1"]] = answered(h["agi_arg_1"], h["agi_callerid"])
        self.results: list[SurveyResultRecord] = []
        self._more = asyncio.Event()
        kw.setdefault("durations", DURATIONS)
        self.server = SurveyServer(SurveyPolicy(cfg or PolicyConfig()), lookup=self.lookup,
                                   on_result=self._on_result, callbacks=Claims(recs), port=0,
                                   local=lambda ts: dtime(12), **kw)  # type: ignore[arg-type]

    def lookup(self, uid: str | None, lid: str | None) -> CallRecord | None:
        return self.calls.get(lid or "") or self.calls.get(uid or "")

    def _on_result(self, rec: SurveyResultRecord) -> None:
        self.results.append(rec)
        self._more.set()

    async def result(self, n: int = 1) -> SurveyResultRecord:
        """The n-th result (emitted after the channel is handed back: wait for it, bounded)."""
        async with asyncio.timeout(5):
            while len(self.results) < n:
                self._more.clear()
                await self._more.wait()
        return self.results[n - 1]


@asynccontextmanager
async def rig(recs: Sequence[Recorded] = (), **kw: object) -> AsyncIterator[Rig]:
    r = Rig(recs, **kw)  # type: ignore[arg-type]
    await r.server.start()
    try:
        yield r
    finally:
        await r.server.close()


def prompts(log: PeerLog) -> list[str]:
    return [c.split()[2].rsplit("/", 1)[1] for c in log.commands if c.startswith(("GET DATA", "STREAM FILE"))]


def headers(lid: str = "1796031239.26", lang: str = "en", callerid: str = "5553001") -> list[str]:
    """a_csat4's request headers in their recorded chunks, for another call."""
    text = "".join(HEADERS).replace("1796031239.26", lid).replace("agi_language: en", f"agi_language: {lang}")
    text = text.replace("agi_arg_3: en", f"agi_arg_3: {lang}").replace("5553001", callerid)
    return [text[:300], text[300:]]


NPS_CES = PolicyConfig(ask_nps=True, ask_ces=True)


# -- the peer is Asterisk 22 -------------------------------------------------------------------------


def test_the_peer_answers_every_recorded_command_as_asterisk_22_did() -> None:
    recs = conversations()
    assert len(recs) == 65 and sum(len(r.header_chunks) > 1 for r in recs) >= 5  # headers in 2-3 chunks
    checked = 0
    for rec in recs:
        ast = Asterisk22(caller_of(rec))
        hangups = 0
        for ex in rec.exchanges:
            got = [line for _, line in ast.answer(ex.command)]
            hangups += got.count("HANGUP")
            assert [x for x in got if x != "HANGUP"] == [x for x in ex.replies if x != "HANGUP"], (
                rec.scenario, rec.conn, ex.command)
            checked += 1
        hangups += 0 if ast.dead else 1  # after qmon's close, sent by run_peer
        assert hangups == sum(x == "HANGUP" for ex in rec.exchanges for x in ex.replies) + rec.after_close.count(
            "HANGUP"), (rec.scenario, rec.conn)
    replies = {x for rec in recs for ex in rec.exchanges for x in ex.replies}
    assert {"200 result= (timeout)", "200 result=", "200 result=-1", "HANGUP", DEAD} <= replies
    assert checked == 336  # every command qmon sent in the run


# -- every recorded conversation ---------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_every_recorded_conversation_ends_as_the_recording_says(scenario: str) -> None:
    recs = load(scenario)
    async with rig(recs, cfg=NPS_CES if scenario == "c_nps_ces" else None) as r:
        for i, rec in enumerate(recs, 1):
            log = await run_peer(r.server.port, rec.header_chunks, Asterisk22(caller_of(rec), time_scale=0.001))
            res = await r.result(i)
            assert (res.status, res.csat, res.nps, res.ces) == rec.expected(), (scenario, rec.conn)
            assert log.closed_by_qmon
            if res.status != "hangup":
                assert log.variables["QMON_SURVEY_STATUS"] == rec.variables()["QMON_SURVEY_STATUS"]
                assert log.variables.get("QMON_CSAT") == rec.variables().get("QMON_CSAT")
                assert log.variables["CDR(userfield)"].endswith(f"status={res.status}")
        assert r.server.stats["errors"] == 0


# -- 1. never silence: a slow peer is waited for, a slow qmon says goodbye -----------------------------


async def test_a_peer_replying_3s_late_still_completes_the_survey() -> None:
    # d_qmon_slow: every reply 3 s late (scaled x0.1 here: 0.3 s), longer than qmon's own work deadline.
    rec = load("d_qmon_slow")[0]
    async with rig([rec], work_deadline_s=0.1) as r:
        ast = Asterisk22(caller_of(rec), reply_delay_s=3.0, time_scale=0.1)
        t0 = time.monotonic()
        log = await run_peer(r.server.port, rec.header_chunks, ast)
        res = await r.result()
    assert time.monotonic() - t0 > 6 * 0.3  # every reply really was late
    assert (res.status, res.csat, res.reason) == ("completed", 4, "ok")
    assert prompts(log) == ["csat-question", "thanks"]


class StuckStore:
    """A cooldown store whose read hangs (a locked database) until released."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def last_surveyed(self, number: str) -> float | None:
        self.release.wait(10)
        return None

    def mark_surveyed(self, number: str, ts: float) -> None:
        pass


async def test_qmon_slow_in_its_own_lookups_plays_goodbye_within_the_deadline() -> None:
    store = StuckStore()
    try:
        async with rig([A_CSAT4], work_deadline_s=0.3, cooldown=store) as r:
            log = await run_peer(r.server.port, A_CSAT4.header_chunks, Asterisk22(caller_of(A_CSAT4)))
            res = await r.result()
    finally:
        store.release.set()
    assert log.first_command_after_s is not None and 0.25 < log.first_command_after_s < 1.5
    assert log.commands == ['SET VARIABLE QMON_SURVEY_STATUS "not_eligible"',
                            'SET VARIABLE CDR(userfield) "qmon:status=not_eligible"', 'STREAM FILE qmon/en/goodbye ""']
    assert (res.status, res.reason, res.linkedid) == ("not_eligible", "qmon_slow", "1796031239.26")
    assert r.server.stats["qmon_slow"] == 1


async def test_a_peer_that_never_answers_is_dropped_after_the_reply_deadline() -> None:
    # d_qmon_hung: headers in 2 chunks, then nothing ever answers qmon (recorded: HANGUP only 120 s later).
    rec = load("d_qmon_hung")[0]
    assert len(rec.header_chunks) == 2 and rec.after_close == ["HANGUP"]
    async with rig([rec], reply_slack_s=0.3) as r:
        t0 = time.monotonic()
        log = await run_peer(r.server.port, rec.header_chunks, Asterisk22(Caller(), silent=True))
        res = await r.result()
    assert log.closed_by_qmon and time.monotonic() - t0 < 2.0
    assert log.commands == ['VERBOSE "qmon survey: en" 3']  # nothing more once the peer is known stuck
    assert (res.status, res.reason) == ("hangup", "agi_no_reply")
    assert r.server.stats["peer_stalled"] == 1


@pytest.mark.parametrize("known", [True, False])
async def test_a_blocking_sink_never_holds_the_caller(known: bool) -> None:
    # The sink runs after the channel is handed back: the peer (in its own thread and loop, so the blocked
    # server loop cannot hide anything) sees qmon close right after the last reply, not after the sink.
    def slow_sink(rec: SurveyResultRecord) -> None:
        time.sleep(1.0)

    async with rig([A_CSAT4] if known else []) as r:
        r.server.on_result = slow_sink
        log = await asyncio.to_thread(asyncio.run, run_peer(
            r.server.port, A_CSAT4.header_chunks, Asterisk22(caller_of(A_CSAT4))))
    assert log.variables["QMON_SURVEY_STATUS"] == ("completed" if known else "not_eligible")
    assert log.close_after_s is not None and log.close_after_s < 0.5


# -- 3. NPS: "then press hash" ------------------------------------------------------------------------


async def survey(keys: list[str], cfg: PolicyConfig = NPS_CES, **kw: object) -> tuple[PeerLog, SurveyResultRecord]:
    async with rig([A_CSAT4], cfg=cfg) as r:
        log = await run_peer(r.server.port, A_CSAT4.header_chunks, Asterisk22(Caller(keys), **kw))  # type: ignore[arg-type]
        return log, await r.result()


async def test_nps_10_hash_does_not_spill_into_the_next_question() -> None:
    log, res = await survey(["5", "10#", "4"])
    assert (res.status, res.csat, res.nps, res.ces) == ("completed", 5, 10, 4)
    assert prompts(log) == ["csat-question", "nps-question", "ces-question", "thanks"]  # no "did not hear"
    assert "GET DATA qmon/en/nps-question 5000 3" in log.commands
    assert "200 result=" not in log.replies  # the # ended NPS's own GET DATA


async def test_nps_one_digit_and_hash_ten_as_two_digits_and_a_lone_hash() -> None:
    assert (await survey(["5", "7#", "4"]))[1].nps == 7
    log, res = await survey(["5", "10", "4"])  # no #: the digit timeout ends it
    assert (res.nps, res.ces) == (10, 4) and "200 result=10 (timeout)" in log.replies
    log, res = await survey(["#", "4"], cfg=PolicyConfig())  # a lone # is consumed: asked again, no "noinput"
    assert (res.status, res.csat, res.raw) == ("completed", 4, "csat=#,4")
    assert prompts(log) == ["csat-question", "csat-question", "thanks"]
    log, res = await survey(["4#", "9#", "2"])  # "4#" at CSAT (1 digit): the # spills, and is consumed
    assert (res.status, res.csat, res.nps, res.ces) == ("completed", 4, 9, 2)
    assert "200 result=" in log.replies and "noinput" not in prompts(log)


async def test_the_recorded_10_hash_caller_hears_no_cut_question() -> None:
    rec = load("c_nps_ces")[2]  # "10#": the # spilled into CES, which the caller heard cut after 0.65 s
    assert "200 result=" in rec.exchanges[3].replies
    async with rig([rec], cfg=NPS_CES) as r:
        log = await run_peer(r.server.port, rec.header_chunks, Asterisk22(caller_of(rec)))
        res = await r.result()
    assert (res.status, res.csat, res.nps) == ("partial", 3, 10)
    assert "200 result=" not in log.replies


# -- 4. max_duration_s kept by every command ----------------------------------------------------------


def test_durations_file_shape_and_defaults(tmp_path: Path) -> None:
    assert DURATIONS.of("pl", "csat-question", "csat") == pytest.approx(16.186)
    assert DURATIONS.of("en", "thanks", "thanks") == pytest.approx(2.912)
    # Unmeasured (another language, a site's own recording): conservative, longer than any shipped prompt.
    assert DURATIONS.of("de", "csat-question", "csat") >= 16.186
    assert PromptDurations().of("en", "my-own-csat", "csat") >= 16.186
    for bad in ([1], {"en": [1]}, {"en": {"thanks": "long"}}, {"en": {"thanks": -1}}, {"en": {"thanks": True}}):
        with pytest.raises(ValueError):
            parse_durations(bad)
    p = tmp_path / "durations.json"
    p.write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        load_durations(p)
    p.write_text(json.dumps({"ro": {"thanks": 4.644}}))
    assert load_durations(p).of("ro", "thanks", "thanks") == pytest.approx(4.644)
    assert isinstance(default_durations(), PromptDurations)  # the shipped file when present, else defaults


async def budget_run(lang: str, keys: list[str], max_s: float) -> tuple[PeerLog, SurveyResultRecord, float]:
    clock = VirtualClock()
    t0 = clock()
    seconds = {f"qmon/{lang}/{k}": v for k, v in DURATIONS.seconds[lang].items()}
    async with rig([], calls={"L1": answered("L1")}, cfg=PolicyConfig(ask_nps=True, ask_ces=True,
                                                                      max_duration_s=max_s), clock=clock) as r:
        ast = Asterisk22(Caller(keys), seconds=seconds, clock=clock, press_after_prompt=True)
        log = await run_peer(r.server.port, headers("L1", lang), ast)
        res = await r.result()
    return log, res, clock() - t0


async def test_max_duration_is_kept_by_each_command_with_the_polish_prompts() -> None:
    # Polish: CSAT question 16.2 s. Invalid, then 3, then silence: the old between-commands check ran past
    # the limit (the NPS retry alone ends 69 s in); now no command may end after it.
    keys = ["9", "3", "", "", "4"]
    log, res, took = await budget_run("pl", keys, 60.0)
    assert took <= 60.0
    assert (res.status, res.csat, res.nps, res.ces) == ("partial", 3, None, None)
    timeouts = [int(c.split()[3]) for c in log.commands if c.startswith("GET DATA")]
    assert timeouts[:2] == [5000, 5000] and 0 < timeouts[2] < 5000  # NPS's digit timeout cut to what is left
    assert prompts(log)[-1] == "goodbye" and "noinput" not in prompts(log)  # no prompt that cannot fit
    # Each GET DATA: prompt + every digit's timeout fits in what was left when it was sent.
    for cmd, at in zip(log.commands, log.sent_at, strict=True):
        if cmd.startswith("GET DATA"):
            prompt, timeout_ms, digits = cmd.split()[2], int(cmd.split()[3]), int(cmd.split()[4])
            assert at - 1_796_000_000.0 + DURATIONS.of("pl", prompt.rsplit("/", 1)[1], "") + (
                digits * timeout_ms / 1000) <= 60.0
    # The same caller with the shorter English prompts gets further in the same budget.
    log_en, res_en, took_en = await budget_run("en", keys, 60.0)
    assert took_en <= 60.0 and prompts(log_en).count("nps-question") == 2 and res_en.status == "partial"


# -- 5. the result in Asterisk's own records -----------------------------------------------------------


async def test_cdr_userfield_carries_the_result() -> None:
    log, _ = await survey(["4"], cfg=PolicyConfig())
    assert log.variables["CDR(userfield)"] == "qmon:csat=4;status=completed"
    assert log.commands.index('SET VARIABLE CDR(userfield) "qmon:csat=4;status=completed"') < log.commands.index(
        'STREAM FILE qmon/en/thanks ""')  # set before the farewell, in case the caller hangs up during it
    log, _ = await survey(["5", "10#", "4"])
    assert log.variables["CDR(userfield)"] == "qmon:csat=5;nps=10;ces=4;status=completed"
    async with rig([A_CSAT4], trace_var="QMON_TRACE") as r:
        log = await run_peer(r.server.port, A_CSAT4.header_chunks, Asterisk22(Caller(["2"])))
    assert log.variables["QMON_TRACE"] == "qmon:csat=2;status=completed" and "CDR(userfield)" not in log.variables
    async with rig([A_CSAT4], trace_var="") as r:
        log = await run_peer(r.server.port, A_CSAT4.header_chunks, Asterisk22(Caller(["2"])))
    assert set(log.variables) == {"QMON_SURVEY_STATUS", "QMON_CSAT"}


async def test_cdr_trace_after_a_hangup_is_set_or_skipped_quietly_on_511() -> None:
    # Hung up during the NPS question: res_agi still allows SET VARIABLE on the dead channel.
    log, res = await survey(["3", "!"])
    assert (res.status, res.csat) == ("partial", 3)
    assert log.replies[log.replies.index("200 result=-1") + 1] == "HANGUP"
    assert log.variables["CDR(userfield)"] == "qmon:csat=3;status=partial"
    # Where Asterisk answers 511 instead, qmon stops at the first one, quietly; the result is still recorded.
    async with rig([A_CSAT4], cfg=NPS_CES) as r:
        log = await run_peer(r.server.port, A_CSAT4.header_chunks,
                             Asterisk22(Caller(["3", "!"]), dead_set_variable=DEAD))
        res = await r.result()
    after = log.commands[log.commands.index("GET DATA qmon/en/nps-question 5000 3") + 1:]
    assert after == ['SET VARIABLE QMON_SURVEY_STATUS "partial"'] and log.replies[-1] == DEAD
    assert (res.status, res.csat) == ("partial", 3) and r.server.stats["errors"] == 0
    # The recorded hang-up between two commands (HANGUP, then 511 to STREAM FILE).
    rec = load("b_hangup_between_commands")[0]
    async with rig([rec]) as r:
        log = await run_peer(r.server.port, rec.header_chunks, Asterisk22(caller_of(rec)))
        res = await r.result()
    assert DEAD in log.replies and res.status == "hangup"
    assert log.variables["CDR(userfield)"] == "qmon:status=hangup"
