"""The daemon's other peers are bounded too: FastAGI request headers and HTTP request lines/headers/bodies.

Each flood goes to the running daemon over real TCP; it is refused (or the connection dropped) without the
daemon buffering it, and the next ordinary request is served.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from pathlib import Path

import aiohttp

from monitor.settings import SurveySettings
from tests.support.amiserver import AmiTestServer
from tests.support.daemon import daemon_settings, running
from tests.support.helpers import until

MB = 1024 * 1024


async def _send(port: int, data: bytes, chunk: int = 256 * 1024) -> bytes:
    """Write ``data`` (as far as the peer lets us) and read what comes back until it closes (at most 5 s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in range(0, len(data), chunk):
            writer.write(data[i:i + chunk])
            await asyncio.wait_for(writer.drain(), 5)
    except (ConnectionError, TimeoutError):
        pass
    try:
        return await asyncio.wait_for(reader.read(65536), 5)
    except (ConnectionError, TimeoutError):
        return b""
    finally:
        writer.transport.abort()


def _rss_kib() -> int:
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_fastagi_oversized_headers_are_refused_and_the_next_request_served(tmp_path: Path) -> None:
    async with AmiTestServer() as ami:
        base = daemon_settings(tmp_path, ami.port)
        settings = dataclasses.replace(base, survey=SurveySettings(port=0, state_path=str(tmp_path / "s.db")))
        async with running(settings) as d:
            assert d.survey_port
            before = _rss_kib()
            await _send(d.survey_port, b"agi_network: yes\n" + b"a" * (10 * MB) + b"\n\n")  # a 10 MB line
            await _send(d.survey_port, b"".join(b"agi_x%d: %s\n" % (i, b"v" * 1000) for i in range(1000)))  # 1 MB
            await _send(d.survey_port, os.urandom(MB))  # 1 MB of garbage
            assert _rss_kib() - before < 50 * 1024
            # An ordinary request for an unknown script still gets its goodbye (the server is alive).
            reply = await _send(d.survey_port, b"agi_network: yes\nagi_network_script: nope\nagi_channel: x\n\n")
            assert reply.startswith(b"STREAM FILE") and b"goodbye" in reply, reply


async def test_http_oversized_request_line_headers_and_body_are_refused(tmp_path: Path) -> None:
    async with AmiTestServer() as ami, running(daemon_settings(tmp_path, ami.port)) as d:
        port = d.http_port
        before = _rss_kib()
        line = await _send(port, b"GET /" + b"a" * (10 * MB) + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert line == b"" or line.split(b" ")[1] in (b"400", b"414", b"431"), line[:80]
        header = await _send(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"b" * MB + b"\r\n\r\n")
        assert header == b"" or header.split(b" ")[1] in (b"400", b"431"), header[:80]
        # No handler reads a body; one sent anyway is never buffered whole (aiohttp streams it past us).
        body = await _send(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % (10 * MB)
                           + b"c" * (10 * MB))
        assert body == b"" or body.split(b" ")[1] in (b"200", b"413"), body[:80]
        assert _rss_kib() - before < 60 * 1024
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as r:
            assert r.status == 200


async def test_event_loop_lag_is_exported_and_moves_when_the_loop_is_blocked(tmp_path: Path) -> None:
    async with AmiTestServer() as ami, running(daemon_settings(tmp_path, ami.port)) as d:
        hist = d.metrics.loop_lag

        await until(lambda: _count(hist) >= 2, 15, "the lag timer's first samples")
        before = _over(hist, 0.5)
        time.sleep(1.2)  # noqa: ASYNC251  (the point: the loop is blocked, the timer wakes up ~1.2 s late)
        await until(lambda: _over(hist, 0.5) >= before + 1, 15,
                    f"a late wake-up counted (count {_count(hist)}, over 0.5 s before: {before})")  # lag >= 0.95 s
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{d.http_port}/metrics") as r:
            text = await r.text()
        assert 'qmon_event_loop_lag_seconds_bucket{le="0.25"}' in text and "qmon_event_loop_lag_seconds_sum" in text
        assert float(next(ln for ln in text.splitlines() if ln.startswith("qmon_event_loop_lag_seconds_sum")
                          ).split()[-1]) >= 0.9


def _count(hist: object) -> float:
    return next(s.value for s in hist.collect()[0].samples if s.name.endswith("_count"))  # type: ignore[attr-defined]


def _over(hist: object, bound: float) -> float:
    """Observations above ``bound`` seconds."""
    samples = hist.collect()[0].samples  # type: ignore[attr-defined]
    total = next(s.value for s in samples if s.name.endswith("_count"))
    below = next(s.value for s in samples if s.name.endswith("_bucket") and float(s.labels["le"]) == bound)
    return float(total - below)
