"""A burst of FastAGI callers over real TCP: the kernel queues every connection the server may hold (no caller's
connect dropped and retried a second later), and the accept loop takes one connection per event-loop turn, so the
replies of surveys already running are read between two newcomers (bench/load.py agi measures what it buys).
Nothing a burst needs is set up during it: the descriptor table is grown and the worker threads are started with
the server, and the lookups reach the worker pool one per free thread."""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import time as dtime
from pathlib import Path

import pytest

from monitor.core.survey import PolicyConfig, SurveyPolicy, SurveyResultRecord
from monitor.survey.listener import backlog_for, fd_budget, grow_fd_table
from monitor.survey.pool import WorkerPool
from monitor.survey.server import SurveyServer
from tests.support.helpers import until

PROC_TCP = Path("/proc/net/tcp")
PROC_STATUS = Path("/proc/self/status")
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


def _fd_table_size() -> int:
    """The kernel's descriptor table size of this process (``FDSize`` in /proc/self/status)."""
    return next(int(line.split()[1]) for line in PROC_STATUS.read_text().splitlines() if line.startswith("FDSize:"))


@pytest.mark.skipif(not PROC_STATUS.exists(), reason="reads FDSize from /proc/self/status (Linux)")
async def test_the_descriptor_table_holds_the_whole_budget_from_the_start() -> None:
    """Once started, the server's process can hold every descriptor its sessions may need without the kernel
    growing the table during a burst (which blocks accept() for an RCU grace period when threads exist)."""
    server = _server([], max_sessions=1500)
    need, limit = fd_budget(1500)
    await server.start()
    try:
        assert _fd_table_size() >= (min(need, limit) if limit >= 0 else need)
    finally:
        await server.close(1.0)


@pytest.mark.skipif(not PROC_STATUS.exists(), reason="reads FDSize from /proc/self/status (Linux)")
def test_growing_the_table_leaves_descriptors_in_use_alone() -> None:
    """A descriptor already at the top of the budget stays open and unchanged; a budget past the limit is capped
    (no error), and the descriptor used to grow the table is closed again."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    need = 4000 if soft == resource.RLIM_INFINITY else min(4000, int(soft))
    with socket.socket() as a, socket.socket() as b:
        high = os.dup2(b.fileno(), need - 1)  # where the dup would land were it placed at the top (need - 1)
        try:
            before = len(os.listdir("/proc/self/fd"))
            grow_fd_table(a, need, -1)
            grow_fd_table(a, 10**9, need)
            assert os.fstat(high).st_ino == os.fstat(b.fileno()).st_ino
            assert len(os.listdir("/proc/self/fd")) == before
            assert _fd_table_size() >= need
        finally:
            os.close(high)


async def test_the_worker_threads_run_from_the_start() -> None:
    """Every thread of the server's pool exists once the server has started (none started during a burst)."""
    server = _server([], max_sessions=10)
    before = set(threading.enumerate())  # threads an earlier test left behind (a hung lookup's) are not this pool's
    await server.start()
    try:
        names = [t.name for t in set(threading.enumerate()) - before if t.name.startswith("qmon-survey")]
        assert len(names) == 4, names
    finally:
        await server.close(1.0)


async def test_jobs_reach_the_pool_one_per_free_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every thread busy, further jobs wait on the loop (not in the executor's queue) and are handed over
    one by one as threads free up, in arrival order; each result comes back to its caller."""
    handed: list[int] = []
    submit = ThreadPoolExecutor.submit

    def counted(self: ThreadPoolExecutor, fn: object, /, *args: object) -> object:
        handed.append(args[0] if args and isinstance(args[0], int) else -1)
        return submit(self, fn, *args)  # type: ignore[arg-type]

    pool = WorkerPool(2, "test-pool")
    pool.start()
    monkeypatch.setattr(ThreadPoolExecutor, "submit", counted)
    gate = threading.Event()

    def job(i: int) -> int:
        gate.wait(5)
        return i * 10

    try:
        tasks = [asyncio.create_task(pool.run(job, i)) for i in range(6)]
        await until(lambda: len(handed) == 2, 5, what="two jobs handed over")
        await asyncio.sleep(0.05)
        assert handed == [0, 1]  # the other four wait on the loop
        gate.set()
        assert await asyncio.gather(*tasks) == [0, 10, 20, 30, 40, 50]
        assert handed == [0, 1, 2, 3, 4, 5]
    finally:
        gate.set()
        pool.shutdown()
