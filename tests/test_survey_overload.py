"""FastAGI under overload, over real TCP: survey.max_sessions, the goodbye beyond it, idle floods, the descriptor
limit (a child process with a lowered RLIMIT_NOFILE), one log line per kind of trouble, the counters."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import time
from datetime import time as dtime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.config import ConfigError, load_settings
from monitor.core.survey import PolicyConfig, SurveyPolicy, SurveyResultRecord
from monitor.survey.listener import Throttle
from monitor.survey.server import SurveyServer
from monitor.web.metrics import QmonMetrics
from tests.support.agiclient import agi_headers, run_caller
from tests.support.calls import answered
from tests.support.helpers import until

CAP = 6
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def _server(results: list[SurveyResultRecord], **kw: object) -> SurveyServer:
    calls = {f"L{i}": answered(f"L{i}") for i in range(100)}
    # reply_slack_s: a peer that does not answer holds its slot for the whole test (the slot is what is tested).
    return SurveyServer(SurveyPolicy(PolicyConfig()), lookup=lambda u, lid: calls.get(lid or ""),
                        on_result=results.append, port=0, local=lambda ts: dtime(12), reply_slack_s=30.0,
                        **kw)  # type: ignore[arg-type]


async def _stalled(port: int, i: int) -> Conn:
    """A caller whose headers arrive and who then never answers a command (its survey holds a slot)."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write("".join(f"{k}: {v}\n" for k, v in agi_headers(f"U{i}", f"L{i}").items()).encode() + b"\n")
    await w.drain()
    return r, w


async def _close(conns: list[Conn]) -> None:
    for _, w in conns:
        w.close()
    await asyncio.gather(*(w.wait_closed() for _, w in conns), return_exceptions=True)


def _lines(caplog: pytest.LogCaptureFixture, word: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "qmon.survey" and word in r.getMessage()]


def _sample(text: str, line_start: str) -> float:
    return float(next(ln for ln in text.splitlines() if ln.startswith(line_start)).rsplit(" ", 1)[1])


async def test_beyond_max_sessions_callers_hear_goodbye_at_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    results: list[SurveyResultRecord] = []
    server = _server(results, max_sessions=CAP)
    metrics = QmonMetrics(CollectorRegistry())
    metrics.survey_server = server
    await server.start()
    try:
        held = [await _stalled(server.port, i) for i in range(CAP)]
        await until(lambda: server.stats["sessions"] == CAP, 5, what="max_sessions surveys running")
        t0 = time.perf_counter()
        extra = await asyncio.gather(*(run_caller(server.port, agi_headers(f"U{i}", f"L{i}"), ["4"], timeout_s=5)
                                       for i in range(CAP, CAP + 5)))
        turned_away_s = time.perf_counter() - t0
        exposed = metrics.expose().decode()
        await _close(held)
        await until(lambda: server.stats["sessions"] == 0, 5, what="the held surveys to end")
        t0 = time.perf_counter()
        real = await run_caller(server.port, agi_headers("U50", "L50"), ["4"], timeout_s=5)
        real_s = time.perf_counter() - t0
    finally:
        await server.close(1.0)
    for s in extra:  # what the dialplan needs: a status, then qmon's own goodbye, then the socket closed
        assert s.closed_by_server and s.prompts() == ["qmon/en/goodbye"]
        assert s.variables["QMON_SURVEY_STATUS"] == "overloaded"
        assert s.variables["CDR(userfield)"] == "qmon:status=overloaded"
        assert not any(c.startswith("GET DATA") for c in s.commands)
    assert turned_away_s < 2.0  # at once: no lookup, no waiting for a slot (bound with a wide margin)
    assert real.variables["QMON_SURVEY_STATUS"] == "completed" and real_s < 2.0
    assert len(_lines(caplog, "overloaded")) == 1  # five turned away, one line
    assert server.stats["rejected_overloaded"] == 5 and server.stats["sessions"] == 0
    assert _sample(exposed, 'qmon_survey_sessions_rejected_total{reason="overloaded"}') == 5
    assert _sample(exposed, 'qmon_survey_sessions_rejected_total{reason="no_room"}') == 0
    assert _sample(exposed, "qmon_survey_sessions_in_progress") == CAP
    overloaded = [r for r in results if r.reason == "overloaded"]
    assert len(overloaded) == 5 and {r.status for r in overloaded} == {"not_eligible"}
    assert {r.linkedid for r in overloaded} == {f"L{i}" for i in range(CAP, CAP + 5)}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_idle_flood_never_blocks_a_real_survey(caplog: pytest.LogCaptureFixture) -> None:
    """Connections that send nothing are held at most max_sessions at a time, the oldest dropped for a newcomer."""
    caplog.set_level(logging.INFO)
    server = _server([], max_sessions=CAP)
    await server.start()
    try:
        idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(5 * CAP)]
        await until(lambda: server.stats["idle_dropped"] == 4 * CAP, 5, what="idle connections dropped")
        assert server.stats["active"] <= CAP
        t0 = time.perf_counter()
        real = await run_caller(server.port, agi_headers("U1", "L1"), ["5"], timeout_s=5)
        real_s = time.perf_counter() - t0
        # The dropped ones were closed by the server (EOF), the newest ones are still waiting for headers.
        eofs = [await asyncio.wait_for(r.read(), 2) == b"" for r, _ in idle[:4 * CAP]]
        await _close(idle)
    finally:
        await server.close(1.0)
    assert real.variables["QMON_SURVEY_STATUS"] == "completed" and real_s < 2.0
    assert all(eofs)
    assert len(_lines(caplog, "dropped")) == 1


async def test_no_room_left_closes_at_once_for_the_dialplans_goodbye(caplog: pytest.LogCaptureFixture) -> None:
    """Every slot busy (surveys and callers hearing the overload goodbye): a newcomer is closed without a word,
    so AGI() returns without a status and the dialplan plays its own goodbye."""
    caplog.set_level(logging.INFO)
    server = _server([], max_sessions=2)
    await server.start()
    try:
        held = [await _stalled(server.port, i) for i in range(2)]
        await until(lambda: server.stats["sessions"] == 2, 5, what="two surveys")
        held += [await _stalled(server.port, i) for i in range(2, 4)]  # they get SET VARIABLE, never answer
        await until(lambda: server.stats["rejected_overloaded"] == 2, 5, what="two callers in the goodbye")
        r, w = await asyncio.open_connection("127.0.0.1", server.port)
        t0 = time.perf_counter()
        got = await asyncio.wait_for(r.read(), 2)
        closed_s = time.perf_counter() - t0
        w.close()
        await _close(held)
    finally:
        await server.close(1.0)
    assert got == b"" and closed_s < 1.0
    assert server.stats["rejected_no_room"] == 1
    assert len(_lines(caplog, "overloaded")) == 1  # the same throttled line covers both kinds


def test_throttle_logs_once_then_a_count_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    t = Throttle(logging.getLogger("qmon.survey"), interval_s=60.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING)
    for i in range(1000):
        now[0] = i * 0.1  # 100 s of trouble
        t.hit("first %s", "again: %d in %.0f s (%s)", "x")
    assert [r.getMessage() for r in caplog.records] == ["first x", "again: 600 in 60 s (x)"]
    assert t.count == 1000


def test_max_sessions_setting() -> None:
    assert load_settings({}, needs={"survey"}).survey.max_sessions == 200
    assert load_settings({"QMON_SURVEY_MAX_SESSIONS": "50"}, needs={"survey"}).survey.max_sessions == 50
    for bad in ("0", "-3", "100001", "many"):
        with pytest.raises(ConfigError) as exc:
            load_settings({"QMON_SURVEY_MAX_SESSIONS": bad}, needs={"survey"})
        assert "survey.max_sessions" in str(exc.value)


async def test_descriptor_limit_in_a_child_no_traceback_flood_and_a_real_survey(tmp_path: Path) -> None:
    """The FastAGI server in a process limited to 64 descriptors (below what max_sessions=200 needs: it warns),
    200 idle connections: accept() hits EMFILE, which is one line, idle connections make room, a survey completes."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    err_path = tmp_path / "stderr.log"
    with err_path.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.support.agi_server_child", "64", str(tmp_path / "survey.db"),
            stdout=asyncio.subprocess.PIPE, stderr=err, env=env, cwd=Path(__file__).parent.parent)
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        port = int(line.split()[1])
        idle = []
        for _ in range(200):
            idle.append(await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5))
        await asyncio.sleep(0.3)
        t0 = time.perf_counter()
        real = await run_caller(port, agi_headers("U1", "L1"), ["4"], timeout_s=10)
        real_s = time.perf_counter() - t0
        await _close(idle)
        proc.terminate()
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = err_path.read_text()
    stats = json.loads(next(ln for ln in out.decode().splitlines() if ln.startswith("STATS "))[6:])
    assert real.variables["QMON_SURVEY_STATUS"] == "completed" and real_s < 3.0, (real_s, log[-2000:])
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
    assert log.count("may need 500 file descriptors, the limit is 64") == 1
    assert stats["accept_errors"] > 0 and log.count("cannot accept FastAGI connections") == 1, log
    assert stats["idle_dropped"] > 0 and stats["errors"] == 0
    assert len(log.splitlines()) < 10, log


async def test_a_burst_of_twice_max_sessions_all_get_a_survey_or_the_goodbye() -> None:
    """2 x max_sessions callers connect at once, each request sent in full before the server reads any: none is
    dropped as idle (its request is buffered: it is read), max_sessions are surveyed, the rest hear goodbye."""
    results: list[SurveyResultRecord] = []
    server = _server(results, max_sessions=5)
    await server.start()
    socks = []
    try:
        # Blocking connects and sends while the loop cannot run: all ten wait in the backlog, requests buffered.
        for i in range(10):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=2)
            s.sendall("".join(f"{k}: {v}\n" for k, v in agi_headers(f"U{i}", f"L{i}").items()).encode() + b"\n")
            s.setblocking(False)
            socks.append(s)
        conns = [await asyncio.open_connection(sock=s) for s in socks]
        firsts = await asyncio.gather(*(asyncio.wait_for(r.readline(), 5) for r, _ in conns))
        await _close(conns)
        await until(lambda: server.stats["active"] == 0, 5, what="all connections ended")
    finally:
        await server.close(1.0)
    assert server.stats["idle_dropped"] == 0 and server.stats["rejected_no_room"] == 0
    assert server.stats["rejected_overloaded"] == 5
    overloaded = [f for f in firsts if b"QMON_SURVEY_STATUS" in f and b"overloaded" in f]
    surveyed = [f for f in firsts if f.startswith(b"VERBOSE") and b"qmon survey: en" in f]
    assert len(overloaded) == 5 and len(surveyed) == 5, firsts
