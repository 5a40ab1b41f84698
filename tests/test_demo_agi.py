"""The demo's simulated Asterisk speaks FastAGI as the recorded Asterisk 22 did (``fixtures/agi22``)."""

from __future__ import annotations

from monitor.sim.agi import AsteriskReplies, request
from tests.support.agi_peer import caller_of, conversations, load


def _modelled() -> list:  # type: ignore[type-arg]
    """Recorded csat conversations within the model: no key spilling past ``#``, no hang-up during a STREAM FILE."""
    out = []
    for rec in conversations():
        caller = caller_of(rec)
        if rec.headers.get("agi_network_script") != "csat" or any("#" in k for k in caller.keys):
            continue
        if any(p for p in caller.plays):
            continue
        out.append(rec)
    return out


def test_replies_as_recorded() -> None:
    """Each command qmon sent gets the reply Asterisk 22 gave, byte for byte (unsolicited HANGUP lines aside)."""
    recs = _modelled()
    assert len(recs) >= 40  # a_csat4, b_*, c_nps_ces, g_*, h_load
    seen = set()
    for rec in recs:
        ast = AsteriskReplies(caller_of(rec).keys, lambda *_: None)
        for ex in rec.exchanges:
            got = [line for _, line in ast.answer(ex.command)]
            want = [r for r in ex.replies if r != "HANGUP"]
            assert [g for g in got if g != "HANGUP"] == want, (rec.scenario, rec.conn, ex.command)
            if "HANGUP" in ex.replies and "200 result=-1" in want:
                assert "HANGUP" in got
            seen.update(r.split(" endpos")[0].split("=")[0] + ("(timeout)" if "timeout" in r else "") for r in want)
    assert {"200 result", "200 result(timeout)"} <= seen


def test_request_headers_as_recorded() -> None:
    """The ``agi_*`` request: the same headers in the same order as Asterisk 22 sent for ``AGI(...,csat,...)``."""
    rec = load("a_csat4")[0]
    want = rec.headers
    got = dict(line.split(": ", 1) for line in request(4574, {
        "channel": want["agi_channel"], "uniqueid": want["agi_uniqueid"], "linkedid": want["agi_arg_1"],
        "callerid": want["agi_callerid"], "calleridname": want["agi_calleridname"], "context": want["agi_context"],
        "extension": want["agi_extension"], "priority": want["agi_priority"]}, "support").strip().split("\n"))
    assert list(got) == list(want)
    assert {k: v for k, v in got.items() if k != "agi_threadid"} == {
        k: v.strip() for k, v in want.items() if k != "agi_threadid"}
