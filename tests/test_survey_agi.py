"""Real FastAGI over TCP: whole conversations against the survey server, hang-ups, bad peers, 200 at once."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from datetime import time as dtime
from pathlib import Path

import pytest

from monitor.core.ingest import Ingest
from monitor.core.records import CallRecord, SurveyNote
from monitor.core.survey import PolicyConfig, SurveyPolicy, SurveyResultRecord
from monitor.survey.server import SurveyServer
from monitor.survey.state import SurveyState
from tests.support.agiclient import HANGUP, TIMEOUT, agi_headers, run_caller
from tests.support.calls import answered, tracker_at_survey


class Harness:
    """A survey server on a free port with an in-memory call table and a result list."""

    def __init__(self, calls: dict[str, CallRecord] | None = None, **kw: object) -> None:
        self.calls = calls or {}
        self.results: list[SurveyResultRecord] = []
        policy = SurveyPolicy(PolicyConfig())
        self.server = SurveyServer(policy, lookup=self.lookup, on_result=self.results.append, port=0,
                                   local=lambda ts: dtime(12), **kw)  # type: ignore[arg-type]

    def lookup(self, uid: str | None, lid: str | None) -> CallRecord | None:
        return self.calls.get(lid or "") or self.calls.get(uid or "")

    async def __aenter__(self) -> Harness:
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.close()


async def test_a_four_with_the_real_tracker() -> None:
    tracker, uid, lid = tracker_at_survey("answered_agent_hangup")
    results: list[SurveyResultRecord] = []
    ingest = Ingest(tracker, [lambda notes: results.extend(n.answer for n in notes
                                                           if isinstance(n, SurveyNote) and n.answer)])
    server = SurveyServer(SurveyPolicy(PolicyConfig()), lookup=ingest.find_call, on_result=ingest.survey, port=0,
                          local=lambda ts: dtime(12))
    await server.start()
    try:
        s = await run_caller(server.port, agi_headers(uid, lid), ["4"])
    finally:
        await server.close()
    assert s.closed_by_server
    assert s.prompts() == ["qmon/en/csat-question", "qmon/en/thanks"]
    assert s.commands[1] == "GET DATA qmon/en/csat-question 5000 1"
    assert s.variables == {"QMON_SURVEY_STATUS": "completed", "QMON_CSAT": "4",
                           "CDR(userfield)": "qmon:csat=4;status=completed"}
    (r,) = results
    assert (r.status, r.csat, r.queue, r.agent, r.caller, r.linkedid, r.uniqueid) == (
        "completed", 4, "support", "agent1", "5551001", lid, uid)
    call = tracker.find_call(uid)
    assert call is not None and call.survey is not None
    assert (call.survey.status, call.survey.score, call.survey.source, call.survey.agent) == ("OK", 4, "agi", "agent1")


async def test_invalid_key_then_five_in_polish() -> None:
    async with Harness({"L1": answered("L1")}) as h:
        s = await run_caller(h.server.port, agi_headers("U1", "L1", lang="pl"), ["9", "5"])
    assert s.prompts() == ["qmon/pl/csat-question", "qmon/pl/invalid", "qmon/pl/csat-question", "qmon/pl/thanks"]
    (r,) = h.results
    assert (r.status, r.csat, r.raw, r.language) == ("completed", 5, "csat=9,5", "pl")


async def test_no_input_twice() -> None:
    async with Harness({"L1": answered("L1")}) as h:
        s = await run_caller(h.server.port, agi_headers("U1", "L1"), [TIMEOUT, TIMEOUT])
    assert s.prompts()[-1] == "qmon/en/goodbye"
    assert s.variables == {"QMON_SURVEY_STATUS": "no_input", "CDR(userfield)": "qmon:status=no_input"}
    assert h.results[0].status == "no_input" and h.results[0].csat is None


async def test_hangup_in_the_middle_of_a_prompt() -> None:
    async with Harness({"L1": answered("L1")}) as h:
        s = await run_caller(h.server.port, agi_headers("U1", "L1"), [HANGUP])
    assert s.closed_by_server
    assert not any(c.startswith("511") for c in s.commands)
    # After the hang-up only what Asterisk allows on a dead channel (SET VARIABLE: the status and the CDR
    # trace); this caller answers them 511, and the server just closes.
    after = s.commands[s.commands.index("GET DATA qmon/en/csat-question 5000 1") + 1:]
    assert after and all(c.startswith("SET VARIABLE") for c in after)
    assert h.results[0].status == "hangup"


async def test_caller_sends_headers_and_vanishes() -> None:
    async with Harness({"L1": answered("L1")}) as h:
        _, w = await asyncio.open_connection("127.0.0.1", h.server.port)
        w.write("".join(f"{k}: {v}\n" for k, v in agi_headers("U1", "L1").items()).encode() + b"\n")
        await w.drain()
        w.close()
        for _ in range(100):
            if h.results:
                break
            await asyncio.sleep(0.01)
    assert h.results[0].status == "hangup"
    assert h.server.stats["active"] == 0 and h.server.stats["errors"] == 0


async def test_partial_headers_then_close_or_silence_times_out_without_spinning() -> None:
    async with Harness(header_timeout_s=0.5) as h:
        # 1) half a header block, then the peer hangs up: EOF ends the read at once.
        _, w = await asyncio.open_connection("127.0.0.1", h.server.port)
        w.write(b"agi_network: yes\nagi_chan")
        await w.drain()
        w.close()
        # 2) headers with no blank line, the connection left open: the deadline must end it.
        r2, w2 = await asyncio.open_connection("127.0.0.1", h.server.port)
        w2.write(b"agi_network: yes\nagi_uniqueid: 1.2\n")
        await w2.drain()
        cpu0, t0 = time.process_time(), time.perf_counter()
        eof = await asyncio.wait_for(r2.read(), 3.0)
        waited, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        w2.close()
        # 3) a header flood over the byte limit.
        r3, w3 = await asyncio.open_connection("127.0.0.1", h.server.port)
        w3.write(b"".join(b"agi_x%d: %s\n" % (i, b"y" * 100) for i in range(400)))
        await w3.drain()
        await asyncio.wait_for(r3.read(), 3.0)
        w3.close()
    assert eof == b""  # closed by the server, nothing sent
    assert 0.3 < waited < 2.0
    assert cpu < 0.3 * waited + 0.05  # a spinning loop would burn a whole core while waiting
    assert h.server.stats["early_hangups"] == 1 and h.server.stats["header_errors"] == 2
    assert h.results == []


async def test_unknown_call_is_not_eligible_but_hears_goodbye() -> None:
    async with Harness() as h:
        s = await run_caller(h.server.port, agi_headers("U9", "L9"), [])
    assert s.variables == {"QMON_SURVEY_STATUS": "not_eligible", "CDR(userfield)": "qmon:status=not_eligible"}
    assert s.prompts() == ["qmon/en/goodbye"]
    assert (h.results[0].status, h.results[0].reason) == ("not_eligible", "unknown_call")


async def test_cooldown_across_a_restart_over_tcp(tmp_path: Path) -> None:
    db = tmp_path / "survey-state.db"
    for expected in ("completed", "not_eligible"):
        state = SurveyState(db)  # a fresh daemon each time: only the file remembers
        async with Harness({"L1": answered("L1"), "L2": answered("L2")}, cooldown=state, optout=state) as h:
            await run_caller(h.server.port, agi_headers("U", "L1" if expected == "completed" else "L2"), ["5"])
        state.close()
        assert h.results[0].status == expected
    assert h.results[0].reason == "cooldown"


def _pct(xs: list[float]) -> str:
    xs = sorted(xs)
    p99 = xs[int(0.99 * (len(xs) - 1))]
    return (f"{len(xs)} round trips p50 {statistics.median(xs) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, "
            f"max {xs[-1] * 1000:.2f} ms")


async def test_200_surveys_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    """200 callers from a separate process (as Asterisk would be); every one answered; latency reported."""
    n = 200
    calls = {f"L{i}": answered(f"L{i}", caller=f"555{i:04d}") for i in range(n)}
    lines = []
    async with Harness(calls) as h:
        base = await run_caller(h.server.port, agi_headers("U0", "L0"), ["4"])  # one caller alone: baseline
        lines.append(f"1 caller: {_pct(base.latencies)}")
        for think in (0.0, 0.3):
            h.results.clear()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.support.agiclient", str(h.server.port), str(n), str(think),
                stdout=asyncio.subprocess.PIPE, cwd=str(Path(__file__).parent.parent))
            out, _ = await asyncio.wait_for(proc.communicate(), 30)
            report = json.loads(out)
            assert report["closed"] == n
            assert len(h.results) == n and all(r.status == "completed" for r in h.results)
            assert report["csat"] == sorted(1 + i % 5 for i in range(n))
            assert sorted(r.csat or 0 for r in h.results) == report["csat"]
            kind = "all in lock-step (worst case)" if think == 0 else f"keys pressed within {think:.1f} s"
            lines.append(f"{n} concurrent, {kind}: {_pct(report['latencies'])}, wall {report['wall']:.2f} s")
    with capsys.disabled():
        print("\nFastAGI command round trips (client in its own process):\n  " + "\n  ".join(lines))
