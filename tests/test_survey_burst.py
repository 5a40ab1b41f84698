"""A burst of FastAGI callers over real TCP: the kernel queues every connection the server may hold (no caller's
connect dropped and retried a second later), and the accept loop takes one connection per event-loop turn, so the
replies of surveys already running are read between two newcomers (bench/load.py agi measures what it buys)."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import time as dtime
from pathlib import Path

import pytest

from monitor.core.survey import PolicyConfig, SurveyPolicy, SurveyResultRecord
from monitor.survey.listener import backlog_for
from monitor.survey.server import SurveyServer
from tests.support.helpers import until

PROC_TCP = Path("/proc/net/tcp")
LISTEN = "0A"


def _server(results: list[SurveyResultRecord], max_sessions: int) -> SurveyServer:
    return SurveyServer(SurveyPolicy(PolicyConfig()), lookup=lambda u, lid: None, on_result=results.append,
                        port=0, local=lambda ts: dtime(12), max_sessions=max_sessions)


def _listen_queue(port: int) -> int:
    """Connections waiting to be accepted on the IPv4 listening socket on ``port``, as the kernel reports them in
    /proc/net/tcp (a listening socket's rx_queue)."""
    for line in PROC_TCP.read_text().splitlines()[1:]:
        f = line.split()
        if int(f[1].split(":")[1], 16) == port and f[3] == LISTEN:
            return int(f[4].split(":")[1], 16)
    raise AssertionError(f"no listening socket on port {port}")


def _connect(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    return socks


@pytest.mark.skipif(not PROC_TCP.exists(), reason="reads the kernel's listen queue from /proc/net/tcp (Linux)")
async def test_a_burst_of_callers_all_wait_in_the_listen_queue() -> None:
    """300 callers connect before the server accepts any: all 300 are queued (the old backlog of 128 queued 129
    and dropped the rest's SYNs: those callers heard a second of silence before their kernel retried)."""
    assert backlog_for(10) == 128 and backlog_for(300) == 600
    server = _server([], max_sessions=300)
    await server.start()  # the accept loop has not run yet: the test does not yield until the connects are in
    socks = _connect(server.port, 300)
    try:
        deadline = time.monotonic() + 5
        while _listen_queue(server.port) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)  # noqa: ASYNC251 (blocks the loop on purpose: nothing is accepted meanwhile)
        assert _listen_queue(server.port) == 300
    finally:
        for s in socks:
            s.close()
        await server.close(1.0)


async def test_one_connection_accepted_per_loop_turn() -> None:
    """With 20 connections queued, one event-loop turn accepts one of them (not the whole queue); all 20 are
    accepted a turn at a time."""
    server = _server([], max_sessions=50)
    await server.start()
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=2) for _ in range(20)]
    try:
        assert server.stats["connections"] == 0
        await asyncio.sleep(0)  # one turn: the accept loop's first step runs before this coroutine resumes
        assert server.stats["connections"] == 1
        await asyncio.sleep(0)
        assert server.stats["connections"] == 2
        await until(lambda: server.stats["connections"] == 20, 5, what="all 20 accepted")
    finally:
        for s in socks:
            s.close()
        await server.close(1.0)
