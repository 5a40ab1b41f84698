"""A scraper that goes away in the middle of a large /metrics body (Prometheus closes the connection at its
scrape_timeout) is routine: no ERROR with a traceback per scrape, no 500 written on a body already started, and
the next scrape is whole and correct. Real TCP."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

import pytest
from prometheus_client import CollectorRegistry

from monitor.ami.wire import WireParser
from monitor.core.ingest import Ingest
from monitor.core.tracker import CallTracker
from monitor.web.metrics import QmonMetrics
from monitor.web.server import ApiContext, make_app, start_http
from tests.test_metrics_scrape_thread import _members


async def _abort_mid_body(port: int) -> int:
    """GET /metrics, read a little of the body, then reset the connection; the bytes read."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the server's writes back up at once
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    s.setblocking(False)
    got = b""
    for _ in range(100):
        await asyncio.sleep(0.02)
        try:
            got += s.recv(4096)
        except BlockingIOError:
            continue
        if b"\r\n\r\n" in got:
            break
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, as a timed-out scraper
    s.close()
    return len(got)


async def test_a_scraper_leaving_mid_body_is_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    m = QmonMetrics(CollectorRegistry(auto_describe=True), clock=lambda: 1e9)
    ing = Ingest(CallTracker())
    for h in WireParser(expect_banner=False).feed(_members(100, 50)):  # ~10 MB of exposition
        ing.feed(h, 1e9)
    m.add_pbx("default", ing)
    runner, port = await start_http(make_app(ApiContext(m)), "127.0.0.1", 0)
    try:
        with caplog.at_level(logging.DEBUG):
            for _ in range(3):
                assert await _abort_mid_body(port) > 0
                await asyncio.sleep(0.3)  # the handler meets the reset connection
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == [], [r.getMessage() for r in errors]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        head, _, body = (await asyncio.wait_for(r.read(), 30)).partition(b"\r\n\r\n")
        w.close()
        assert head.startswith(b"HTTP/1.1 200") and body == m.expose()
    finally:
        await runner.cleanup()
