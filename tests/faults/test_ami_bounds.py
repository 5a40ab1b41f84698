"""Every byte an AMI peer sends is bounded in memory, and a stalled Asterisk is left and rejoined.

Floods come from real TCP peers on 127.0.0.1: 300 MB before the banner (the daemon in its own process, its peak
RSS read from /proc: 79 -> 370 MB before this fix), 300 MB of junk after a valid banner, 1 MB of garbage and a
10 MB line in the middle of a real stream (the calls around them still recorded as ``qmon replay`` records them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.ami.live import AmiSource
from monitor.ami.wire import WireParser
from monitor.core.ingest import Ingest, closed_records
from monitor.core.records import CallRecord, Note
from monitor.core.tracker import CallTracker
from monitor.settings import AmiSettings
from tests.support.amiserver import AmiTestServer
from tests.support.factcheck import assert_facts, load_facts
from tests.support.helpers import until

ROOT = Path(__file__).resolve().parents[2]
FLOOD = 300 * 1024 * 1024
RSS_MARGIN_KIB = 60 * 1024  # generous: the flood itself is 300 MB


async def _flood_server(prefix: bytes, junk: bytes) -> tuple[asyncio.Server, list[int]]:
    """A peer that sends ``prefix`` then ``junk`` repeated up to FLOOD bytes per connection, as fast as read."""
    sent: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        sent.append(0)
        with contextlib.suppress(ConnectionError):
            writer.write(prefix)
            while n < FLOOD:
                writer.write(junk)
                await writer.drain()
                n += len(junk)
                sent[-1] = n
        writer.transport.abort()

    return await asyncio.start_server(serve, "127.0.0.1", 0), sent


async def _daemon_memory(tmp_path: Path, port: int, seconds: float) -> dict[str, int | str | bool]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.faults.child_daemon", str(tmp_path), str(port), str(seconds),
        stdout=asyncio.subprocess.PIPE, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    out, _ = await asyncio.wait_for(proc.communicate(), 25)
    assert proc.returncode == 0, out
    print(out.decode().strip().splitlines()[-1])  # the figures, for -s runs
    return json.loads(out.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("newlines", [False, True], ids=["one-line", "junk-lines"])
async def test_300_mb_before_the_banner_leaves_the_daemon_rss_bounded(tmp_path: Path, newlines: bool) -> None:
    junk = (b"x" * 1023 + b"\n") * 1024 if newlines else b"x" * (1 << 20)
    server, sent = await _flood_server(b"", junk)
    async with server:
        mem = await _daemon_memory(tmp_path, server.sockets[0].getsockname()[1], 3.0)
    assert "not an AMI server" in str(mem["last_error"]), mem
    assert int(mem["hwm_kib"]) - int(mem["hwm_before_kib"]) < RSS_MARGIN_KIB, mem
    assert len(sent) >= 2, sent  # dropped at once, and tried again with backoff


async def test_300_mb_of_junk_after_the_banner_is_read_in_bounded_memory(tmp_path: Path) -> None:
    # A valid banner, then junk header lines with no blank line and never a Login answer: the parser drops each
    # oversized message (1 MiB) and keeps reading until the login timeout.
    server, sent = await _flood_server(b"Asterisk Call Manager/11.0.0\r\n", b"Junk: " + b"y" * 1016 + b"\r\n")
    async with server:
        mem = await _daemon_memory(tmp_path, server.sockets[0].getsockname()[1], 3.0)
    assert int(mem["bytes_received"]) > 20 * 1024 * 1024, mem  # the flood really was read
    assert int(mem["hwm_kib"]) - int(mem["hwm_before_kib"]) < RSS_MARGIN_KIB, mem
    assert sum(sent) > 0


def test_the_parser_bounds_bytes_before_the_banner() -> None:
    p = WireParser(expect_banner=True)
    chunk = b"z" * (1 << 20)
    tracemalloc.start()
    try:
        for _ in range(64):
            assert p.feed(chunk) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * (1 << 20), peak  # two or three chunks, never 64 MiB
    assert p.oversized >= 30 and p.banner is None
    assert p.feed(b"\r\nAsterisk Call Manager/11.0.0\r\nEvent: X\r\n\r\n")[-1]["Event"] == "X"  # reads on


@contextlib.asynccontextmanager
async def _source(srv: AmiTestServer, **settings: float) -> AsyncIterator[tuple[AmiSource, list[CallRecord]]]:
    tracker = CallTracker()
    records: list[CallRecord] = []

    def sink(notes: list[Note]) -> None:
        records.extend(closed_records(notes))

    source = AmiSource(AmiSettings(port=srv.port, secret="secret", backoff_initial_s=0.05, backoff_max_s=0.2,
                                   connect_timeout_s=2.0, **settings), Ingest(tracker, [sink]), clock=time.time)
    task = asyncio.create_task(source.run())
    try:
        yield source, records
    finally:
        await source.close()
        await asyncio.wait_for(task, 5)
        records.extend(closed_records(tracker.close_all(tracker.now, "eof")))


@pytest.mark.parametrize("garbage", ["1mb-random", "10mb-line"])
async def test_garbage_mid_stream_is_dropped_and_the_calls_around_it_are_exact(garbage: str) -> None:
    msgs = AmiTestServer.from_transcript("concurrent").messages
    if garbage == "1mb-random":
        junk = random.Random(7).randbytes(1_000_000).replace(b"\r\n\r\n", b"....") + b"\r\n\r\n"
    else:
        junk = b"Q" * (10 * 1024 * 1024) + b"\r\n\r\n"
    at = 420  # two calls talking, four waiting
    srv = AmiTestServer([*msgs[:at], junk, *msgs[at:]], mode="chunks", max_chunk=256 * 1024, seed=3)
    async with srv, _source(srv) as (source, records):
        await source.wait_ready()
        await srv.wait_streamed(20)
        await source.send_action({"Action": "Ping"})  # answered after everything streamed was read
        assert source.reconnects == 0
    assert_facts(records, load_facts("concurrent"))


async def test_stalled_asterisk_is_dropped_on_ping_timeout_and_the_stream_resumes() -> None:
    # At message 420 Asterisk goes silent (no events, no Ping answers, socket open); qmon's Ping gets no answer,
    # it drops the connection, logs in again, resyncs (the calls are still alive) and the stream goes on.
    srv = AmiTestServer.from_transcript("concurrent", state="auto", stall_at=420)
    async with srv, _source(srv, ping_interval_s=0.3) as (source, records):
        await source.wait_ready()
        await until(lambda: srv.connections >= 2 and source.synced, 10, "reconnected after the stall")
        await srv.wait_streamed(10)
        await source.send_action({"Action": "Ping"})
        assert source.reconnects == 1
    assert_facts(records, load_facts("concurrent"))
    assert not [r for r in records if r.closed_by == "gap"]
