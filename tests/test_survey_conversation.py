"""The conversation state machine (pure): what is asked, retries, statuses, NPS entry, time limit."""

from __future__ import annotations

from dataclasses import replace

from monitor.core.conversation import Ask, Command, Conversation, Done, Outcome, Play, Reply, SetVar
from monitor.core.survey import PolicyConfig, SurveyPolicy, SurveyResultRecord

HANG = Reply(hangup=True)


def run(
    script: list[Reply], *, step_s: float = 1.0, intro: bool = False, **cfg: object
) -> tuple[Outcome, list[Command]]:
    """Feed one reply per Ask (Plays/SetVars get a plain OK) and collect the commands."""
    conv = Conversation(SurveyPolicy(PolicyConfig(**cfg)), "en", 0.0, intro=intro)  # type: ignore[arg-type]
    now = 0.0
    cmd = conv.start(now)
    cmds: list[Command] = [cmd]
    replies = list(script)
    while not isinstance(cmd, Done):
        if not isinstance(cmd, SetVar):  # SET VARIABLE answers at once; prompts take time
            now += step_s
        if isinstance(cmd, Ask):
            r = replies.pop(0) if replies else Reply(timeout=True)
        else:
            r = Reply(digits="0")
        cmd = conv.feed(r, now)
        cmds.append(cmd)
    return cmd.outcome, cmds


def prompts(cmds: list[Command]) -> list[str]:
    return [c.prompt.rsplit("/", 1)[1] for c in cmds if isinstance(c, (Ask, Play))]


def setvars(cmds: list[Command]) -> dict[str, str]:
    return {c.name: c.value for c in cmds if isinstance(c, SetVar)}


def test_a_four() -> None:
    out, cmds = run([Reply(digits="4")])
    assert (out.status, out.csat, out.raw) == ("completed", 4, "csat=4")
    assert prompts(cmds) == ["csat-question", "thanks"]
    assert cmds[0] == Ask("qmon/en/csat-question", 1, 5000)
    assert setvars(cmds) == {"QMON_SURVEY_STATUS": "completed", "QMON_CSAT": "4"}


def test_invalid_then_five() -> None:
    out, cmds = run([Reply(digits="9"), Reply(digits="5")])
    assert (out.status, out.csat, out.raw) == ("completed", 5, "csat=9,5")
    assert prompts(cmds) == ["csat-question", "invalid", "csat-question", "thanks"]


def test_no_input_twice_and_invalid_twice() -> None:
    out, cmds = run([Reply(timeout=True), Reply(timeout=True)])
    assert (out.status, out.csat) == ("no_input", None)
    assert prompts(cmds) == ["csat-question", "noinput", "csat-question", "goodbye"]
    assert setvars(cmds) == {"QMON_SURVEY_STATUS": "no_input"}
    out, _ = run([Reply(digits="0"), Reply(digits="7")])
    assert (out.status, out.raw) == ("invalid", "csat=0,7")
    out, _ = run([Reply(digits="#"), Reply(digits="")])
    assert out.status == "no_input"


def test_star_declines() -> None:
    out, cmds = run([Reply(digits="*")])
    assert out.status == "declined" and prompts(cmds)[-1] == "goodbye"


def test_hangup_before_and_after_csat() -> None:
    assert run([HANG])[0].status == "hangup"
    out, _ = run([Reply(digits="3"), HANG], ask_nps=True)
    assert (out.status, out.csat, out.nps) == ("partial", 3, None)


def test_nps_two_digits_hash_or_timeout_and_ces() -> None:
    out, cmds = run([Reply(digits="5"), Reply(digits="10"), Reply(digits="2")], ask_nps=True, ask_ces=True)
    assert (out.status, out.csat, out.nps, out.ces) == ("completed", 5, 10, 2)
    assert [c.max_digits for c in cmds if isinstance(c, Ask)] == [1, 3, 1]
    # "7#": GET DATA returns 7 (the # ends input); "8" then the inter-digit timeout also counts.
    assert run([Reply(digits="5"), Reply(digits="7")], ask_nps=True)[0].nps == 7
    assert run([Reply(digits="5"), Reply(digits="8", timeout=True)], ask_nps=True)[0].nps == 8
    assert run([Reply(digits="5"), Reply(digits="0")], ask_nps=True)[0].nps == 0
    out, cmds = run([Reply(digits="5"), Reply(digits="11"), Reply(timeout=True)], ask_nps=True)
    assert (out.status, out.csat, out.nps) == ("partial", 5, None)  # optional question left unanswered
    assert prompts(cmds) == ["csat-question", "nps-question", "invalid", "nps-question", "thanks"]


def test_optional_question_failing_does_not_stop_the_next() -> None:
    out, _ = run([Reply(digits="4"), Reply(timeout=True), Reply(timeout=True), Reply(digits="5")],
                 ask_nps=True, ask_ces=True)
    assert (out.status, out.nps, out.ces) == ("partial", None, 5)


def test_maximum_duration_stops_asking() -> None:
    out, cmds = run([Reply(digits="9"), Reply(digits="9"), Reply(digits="9")], step_s=40.0, max_duration_s=60.0)
    assert out.status == "invalid"
    out, cmds = run([Reply(digits="4"), Reply(timeout=True)], step_s=50.0, max_duration_s=60.0, ask_nps=True,
                    ask_ces=True)
    assert out.status == "partial" and prompts(cmds)[-1] == "goodbye"
    assert len([c for c in cmds if isinstance(c, Ask)]) <= 2


def test_callback_intro_and_record_mapping() -> None:
    out, cmds = run([Reply(digits="2")], intro=True)
    assert prompts(cmds)[0] == "callback-intro" and out.csat == 2
    rec = SurveyResultRecord("L", "U", "5551001", "support", "agent1", "partial", 4, None, None, "csat=4", "en",
                             "agi", 1.0, 2.0)
    s = rec.to_survey()
    assert (s.status, s.score, s.queue, s.agent, s.source) == ("OK", 4, "support", "agent1", "agi")
    assert replace(rec, status="no_input", reason="x").to_survey().status == "NOINPUT"
    assert replace(rec, status="hangup", reason="x").to_survey().status == "HANGUP"


def test_hangup_leaves_status_and_trace_then_ends() -> None:
    conv = Conversation(SurveyPolicy(PolicyConfig(ask_nps=True)), "en", 0.0, trace_var="CDR(userfield)")
    conv.start(0.0)
    conv.feed(Reply(digits="3"), 5.0)
    cmds = [conv.feed(HANG, 9.0)]
    while not isinstance(cmds[-1], Done):
        cmds.append(conv.feed(Reply(digits="1"), 9.0))  # SET VARIABLE on a dead channel: 200 result=1
    assert cmds[:-1] == [SetVar("QMON_SURVEY_STATUS", "partial"), SetVar("QMON_CSAT", "3"),
                         SetVar("CDR(userfield)", "qmon:csat=3;status=partial")]
    assert (cmds[-1].outcome.status, cmds[-1].outcome.duration_s) == ("partial", 9.0)
    # A 511 to the first of them ends the conversation at once.
    conv = Conversation(SurveyPolicy(PolicyConfig()), "en", 0.0, trace_var="CDR(userfield)")
    conv.start(0.0)
    assert isinstance(conv.feed(HANG, 2.0), SetVar)
    assert isinstance(conv.feed(HANG, 2.0), Done)


def test_digit_timeout_cut_to_the_time_left() -> None:
    conv = Conversation(SurveyPolicy(PolicyConfig(max_duration_s=30.0)), "en", 0.0)
    first = conv.start(0.0)
    # Conservative defaults: CSAT 18 s, farewell 5 s + 1 s margin -> 6 s left for one digit: 5 s stays.
    assert isinstance(first, Ask) and (first.timeout_ms, first.expect_s) == (5000, 18.0)
    conv = Conversation(SurveyPolicy(PolicyConfig(max_duration_s=27.0)), "en", 0.0)
    assert conv.start(0.0) == Ask("qmon/en/csat-question", 1, 3000)
    conv = Conversation(SurveyPolicy(PolicyConfig(max_duration_s=25.0)), "en", 0.0)
    assert prompts([conv.start(0.0)]) == []  # not even one digit fits: no question at all
