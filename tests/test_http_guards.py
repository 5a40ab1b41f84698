"""The HTTP server below the application, over real TCP: aiohttp's own 400 pages carry our headers (no version
banner), a request's headers have a deadline, connections are bounded, the Host check without a token (DNS
rebinding), and the bearer scheme in any case."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.web.conn import ConnGuard
from monitor.web.metrics import QmonMetrics
from monitor.web.server import ApiContext, make_app, start_http


@asynccontextmanager
async def serving(token: str = "", guard: ConnGuard | None = None, header_timeout_s: float = 10.0,
                  slow: asyncio.Event | None = None) -> AsyncIterator[int]:
    app = make_app(ApiContext(QmonMetrics(CollectorRegistry()), token=token))
    if slow is not None:  # a request that stays inside its handler (as a wallboard stream does)
        async def hold(request: web.Request) -> web.Response:
            await slow.wait()
            return web.json_response({})
        app.router.add_get("/slow", hold)
    runner, port = await start_http(app, "127.0.0.1", 0, guard, header_timeout_s)
    try:
        yield port
    finally:
        await runner.cleanup()


async def raw(port: int, data: bytes, timeout_s: float = 5.0) -> bytes:
    """Send ``data`` and read until the server closes (or ``timeout_s``)."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(data)
        await w.drain()
        return await asyncio.wait_for(r.read(), timeout_s)
    finally:
        w.close()


def get(path: str, *headers: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\n" + "".join(h + "\r\n" for h in headers) + "Connection: close\r\n\r\n").encode()


async def test_unparseable_requests_get_our_headers_not_a_version_banner() -> None:
    async with serving() as port:
        long_query = await raw(port, get("/healthz?" + "a" * 9000, "Host: 127.0.0.1"))
        many = await raw(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         + b"".join(b"X-%d: y\r\n" % i for i in range(20000)) + b"\r\n")
    for resp in (long_query, many):
        head = resp.split(b"\r\n\r\n", 1)[0].decode().lower()
        assert head.startswith(("http/1.0 400", "http/1.1 400")), head
        assert "server: qmon\r\n" in head and "aiohttp" not in head and "python" not in head
        assert "cache-control: no-store" in head and "x-content-type-options: nosniff" in head


async def test_half_sent_requests_are_closed_at_the_header_deadline() -> None:
    async with serving(header_timeout_s=0.5) as port:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        await w.drain()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await asyncio.wait_for(r.read(), 5) == b""
        closed_s = loop.time() - t0
        w.close()
        ok = await raw(port, get("/healthz", "Host: 127.0.0.1"))
    assert 0.3 < closed_s < 3.0
    assert ok.startswith(b"HTTP/1.1 200")


async def test_connections_are_bounded_oldest_waiting_one_makes_room(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    guard = ConnGuard(max_connections=8)
    async with serving(guard=guard) as port:
        half = []
        for _ in range(20):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            await w.drain()
            half.append((r, w))
        ok = await raw(port, get("/healthz", "Host: 127.0.0.1"))  # a newcomer still gets through
        eofs = [await asyncio.wait_for(r.read(), 2) == b"" for r, _ in half[:13]]
        open_now = len(guard.open)
        for _, w in half:
            w.close()
    assert ok.startswith(b"HTTP/1.1 200") and all(eofs)
    assert guard.dropped == 13 and guard.refused == 0 and open_now <= 8
    assert len([r for r in caplog.records if "connections open" in r.getMessage()]) == 1


async def test_every_connection_busy_closes_the_newcomer_at_once() -> None:
    guard = ConnGuard(max_connections=3)
    slow = asyncio.Event()
    async with serving(guard=guard, slow=slow) as port:
        busy = []
        for _ in range(3):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(get("/slow", "Host: 127.0.0.1"))
            await w.drain()
            busy.append((r, w))
        await asyncio.sleep(0.2)  # all three inside the handler
        refused = await raw(port, get("/healthz", "Host: 127.0.0.1"), 2)
        slow.set()
        answers = [await asyncio.wait_for(r.read(), 5) for r, _ in busy]
        for _, w in busy:
            w.close()
    assert refused == b"" and guard.refused == 1 and guard.dropped == 0
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers)


async def test_without_a_token_only_loopback_host_names_are_served() -> None:
    async with serving() as port:
        allowed = [await raw(port, get("/api/v1/queues", f"Host: {h}")) for h in
                   (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "localhost", "LOCALHOST:1")]
        refused = [await raw(port, get("/api/v1/queues", f"Host: {h}")) for h in
                   ("evil", f"evil.example:{port}", "127.0.0.1.evil.example", "[::2]:1")]
    assert all(a.startswith(b"HTTP/1.1 200") for a in allowed), allowed
    for resp in refused:
        assert resp.startswith(b"HTTP/1.1 421"), resp
        assert resp.split(b"\r\n\r\n", 1)[1].startswith(b'{"error": "Host is not'), resp
        assert b'"queues"' not in resp


async def test_with_a_token_any_host_and_the_bearer_scheme_in_any_case() -> None:
    async with serving(token="s3cret") as port:
        answers = {scheme: await raw(port, get("/api/v1/queues", "Host: qmon.example:9464",
                                               f"Authorization: {scheme} s3cret"))
                   for scheme in ("Bearer", "bearer", "BEARER")}
        wrong = await raw(port, get("/api/v1/queues", "Host: qmon.example", "Authorization: Basic s3cret"))
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers.values()), answers
    assert wrong.startswith(b"HTTP/1.1 401")
