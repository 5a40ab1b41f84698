"""The survey server stopping (qmon's shutdown) over real TCP: no caller is reset and no answer is lost.

* Callers the kernel had already queued when qmon stops accepting are still served: closing a listening socket
  resets the connections in its queue, and such a caller's ``AGI()`` would get nothing (no goodbye, no
  ``QMON_SURVEY_STATUS``) while qmon recorded nothing either.
* A survey still running when the grace period ends is cut, and stored with the answers given so far and the
  reason ``qmon_shutdown`` (before: the cancelled session emitted nothing, and the daemon's outer bound on the
  close cancelled it at the same instant as the server's own, so sessions outlived the store's drain).
* So is one cut before its first question, and the goodbye of a caller not surveyed (not eligible, overloaded)
  cut by the shutdown keeps that caller's record (before: only a cut inside the question loop was recorded).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from datetime import time as dtime
from pathlib import Path

from monitor.core.survey import PolicyConfig, SurveyPolicy, SurveyResultRecord
from monitor.survey.server import SurveyServer
from tests.support.agiclient import agi_headers, asterisk_reply
from tests.support.calls import answered


def _server(results: list[SurveyResultRecord], **policy: bool) -> SurveyServer:
    """A survey server whose calls (by Linkedid ``1700000000.N``) were all answered, each by its own caller."""
    calls = {f"1700000000.{i}": answered(f"1700000000.{i}", caller=f"555100{i}") for i in range(10)}
    return SurveyServer(SurveyPolicy(PolicyConfig(**policy)), lookup=lambda u, lid: calls.get(lid or ""),
                        on_result=results.append, port=0, local=lambda ts: dtime(12))


async def _answer(sock: socket.socket, keys: list[str], stall_after: int | None = None,
                  commands: list[str] | None = None) -> tuple[list[str], bool]:
    """Answer as Asterisk 22 on an already connected socket: ``keys`` to the GET DATAs in turn; with
    ``stall_after`` = n, no reply to the command after the n-th GET DATA (a caller qmon must cut). Returns the
    commands received (also appended to ``commands`` as they come) and whether the server closed the connection
    cleanly (False: reset)."""
    reader, writer = await asyncio.open_connection(sock=sock)
    commands = [] if commands is None else commands
    variables: dict[str, str] = {}
    asked = 0
    clean = True
    try:
        while True:
            line = await asyncio.wait_for(reader.readline(), 10)
            if not line:
                break
            cmd = line.decode().strip()
            commands.append(cmd)
            if stall_after is not None and asked >= stall_after:
                continue  # the caller's side says nothing more: qmon waits until it stops
            if cmd.startswith("GET DATA"):
                reply = f"200 result={keys[asked]}" if asked < len(keys) else "200 result= (timeout)"
                asked += 1
            else:
                reply = asterisk_reply(cmd, variables)
            writer.write(reply.encode() + b"\n")
            await writer.drain()
    except ConnectionResetError:
        clean = False
    finally:
        writer.close()
    return commands, clean


def _request(uid: str) -> bytes:
    return "".join(f"{k}: {v}\n" for k, v in agi_headers(uid, uid).items()).encode() + b"\n"


async def test_callers_queued_when_qmon_stops_are_still_served() -> None:
    results: list[SurveyResultRecord] = []
    server = _server(results)
    await server.start()
    # No await between start() and close(): the accept loop never runs, the 3 callers wait in the kernel's queue
    # with their requests sent, as a caller whose connect landed just as qmon began to stop.
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=2) for _ in range(3)]
    for i, s in enumerate(socks):
        s.sendall(_request(f"1700000000.{i}"))
        s.setblocking(False)
    closing = asyncio.create_task(server.close(5.0))
    talks = await asyncio.gather(*(_answer(s, ["4"]) for s in socks))
    await closing
    for commands, clean in talks:
        assert clean, commands
        assert any(c.startswith("GET DATA") for c in commands), commands
        assert 'SET VARIABLE QMON_SURVEY_STATUS "completed"' in commands, commands
    assert sorted(r.linkedid or "" for r in results) == [f"1700000000.{i}" for i in range(3)]
    assert {(r.status, r.csat, r.reason) for r in results} == {("completed", 4, "ok")}
    assert server.stats["connections"] == 3


async def test_a_survey_cut_by_the_shutdown_keeps_its_answers() -> None:
    results: list[SurveyResultRecord] = []
    server = _server(results, ask_nps=True)
    await server.start()
    s = socket.create_connection(("127.0.0.1", server.port), timeout=2)
    s.sendall(_request("1700000000.7"))
    s.setblocking(False)
    seen: list[str] = []
    caller = asyncio.create_task(_answer(s, ["5"], stall_after=1, commands=seen))  # CSAT 5, then says nothing
    for _ in range(500):  # until qmon has asked the NPS question
        await asyncio.sleep(0.01)
        if sum(c.startswith("GET DATA") for c in seen) == 2:
            break
    await server.close(0.3)
    commands, _ = await caller
    assert sum(c.startswith("GET DATA") for c in commands) == 2, commands
    assert [(r.linkedid, r.status, r.csat, r.nps, r.reason) for r in results] == [
        ("1700000000.7", "partial", 5, None, "qmon_shutdown")]
    assert results[0].raw == "csat=5"



async def _stall_on(server: SurveyServer, uid: str, prefix: str) -> tuple[asyncio.StreamWriter, list[str]]:
    """A caller that answers as Asterisk until qmon sends a command starting with ``prefix``, then says nothing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(_request(uid))
    seen: list[str] = []
    while not seen or not seen[-1].startswith(prefix):
        seen.append((await asyncio.wait_for(reader.readline(), 5)).decode().strip())
        if not seen[-1].startswith(prefix):
            writer.write((asterisk_reply(seen[-1], {}) + "\n").encode())
    return writer, seen


async def test_a_survey_cut_before_its_first_question_is_still_recorded() -> None:
    """Cut while qmon waits for the reply to its first VERBOSE (the call was eligible, nothing asked yet): stored as
    a hang-up with reason ``qmon_shutdown``, as the same stall would have been without the shutdown."""
    results: list[SurveyResultRecord] = []
    server = _server(results)
    await server.start()
    writer, seen = await _stall_on(server, "1700000000.3", "VERBOSE")
    await server.close(0.3)
    writer.close()
    assert seen == ['VERBOSE "qmon survey: en" 3']
    assert [(r.linkedid, r.status, r.csat, r.reason) for r in results] == [
        ("1700000000.3", "hangup", None, "qmon_shutdown")]


async def test_a_goodbye_cut_by_the_shutdown_keeps_its_record() -> None:
    """Cut during the goodbye of a caller who is not surveyed (unknown call) and of one beyond max_sessions: each
    is stored as it would have been once its goodbye ended (not_eligible, with its reason)."""
    results: list[SurveyResultRecord] = []
    calls = {"1700000000.1": answered("1700000000.1", caller="5551001")}
    server = SurveyServer(SurveyPolicy(PolicyConfig()), lookup=lambda u, lid: calls.get(lid or ""),
                          on_result=results.append, port=0, local=lambda ts: dtime(12), max_sessions=2)
    await server.start()
    surveyed, _ = await _stall_on(server, "1700000000.1", "GET DATA")  # a survey held open
    unknown_w, _ = await _stall_on(server, "1700000000.9", "STREAM FILE")  # not a known call: not eligible
    overloaded, seen = await _stall_on(server, "1700000000.2", "STREAM FILE")  # the third: beyond max_sessions
    assert 'SET VARIABLE QMON_SURVEY_STATUS "overloaded"' in seen
    await server.close(0.3)
    for w in (surveyed, overloaded, unknown_w):
        w.close()
    assert sorted((r.linkedid or "", r.status, r.reason) for r in results) == [
        ("1700000000.1", "hangup", "qmon_shutdown"),
        ("1700000000.2", "not_eligible", "overloaded"),
        ("1700000000.9", "not_eligible", "unknown_call"),
    ]


async def test_callers_queued_at_shutdown_are_served_when_descriptors_run_out(tmp_path: Path) -> None:
    """The server in a process limited to 64 descriptors stops with 300 idle connections queued ahead of 3
    callers: accept() fails with EMFILE while the queue is taken, idle connections are dropped to make room and the
    3 callers are surveyed (before: the first EMFILE ended the taking and closing the socket reset them)."""
    root = Path(__file__).parent.parent
    with (tmp_path / "stderr.log").open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.support.agi_server_child", "64", str(tmp_path / "survey.db"), "hold",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
            env={**os.environ, "PYTHONPATH": str(root)}, cwd=root)
    assert proc.stdin is not None and proc.stdout is not None
    idle: list[socket.socket] = []
    try:
        port = int((await asyncio.wait_for(proc.stdout.readline(), 20)).split()[1])
        idle = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(300)]
        callers = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(3)]
        for i, s in enumerate(callers):
            s.sendall("".join(f"{k}: {v}\n" for k, v in agi_headers(f"U{i}", f"L{i}").items()).encode() + b"\n")
            s.setblocking(False)
        proc.stdin.write(b"stop\n")  # the server closes now, every connection still in its listen queue
        talks = await asyncio.gather(*(_answer(s, ["4"]) for s in callers))
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        for s in idle:
            s.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = (tmp_path / "stderr.log").read_text()
    stats = json.loads(next(ln for ln in out.decode().splitlines() if ln.startswith("STATS "))[6:])
    for commands, clean in talks:
        assert clean and 'SET VARIABLE QMON_SURVEY_STATUS "completed"' in commands, (commands, log[-2000:])
    assert stats["accept_errors"] > 0 and stats["idle_dropped"] > 0, stats  # descriptors really ran out
    assert "Traceback" not in log, log[-3000:]
