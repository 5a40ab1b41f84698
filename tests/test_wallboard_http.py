"""The wallboard's HTTP side over real TCP: its JSON against the OpenAPI document, the token-for-cookie exchange
(raw Set-Cookie attributes), the cookie opening the wallboard only, server-sent events, a prompt shutdown with a
screen connected, ``[wallboard] enabled = false``, and the callbacks-owed tile fed by a provider."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path

import aiohttp
import pytest

from monitor.core.ingest import Ingest
from monitor.core.today import DayTally
from monitor.core.tracker import CallTracker, TrackerConfig
from monitor.settings import WallboardSettings
from monitor.web.metrics import QmonMetrics
from monitor.web.server import ApiContext, LivePbx, make_app, start_http
from monitor.web.wallboard import BoardPbx, Wallboard
from monitor.web.wallboard_http import COOKIE, cookie_value
from tests.support.amiserver import AmiTestServer, transcript_messages
from tests.support.daemon import daemon_settings, running
from tests.support.helpers import until
from tests.test_daemon_api import check

pytestmark = pytest.mark.usefixtures("year_after_recordings")  # the wall clock is far from PBX time

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_wallboard_json_cookie_and_events(tmp_path: Path) -> None:
    async with AmiTestServer(transcript_messages("concurrent")) as srv, \
            running(daemon_settings(tmp_path, srv.port, token=TOKEN)) as d:
        await srv.wait_streamed(30)
        await until(lambda: d.pbxs["default"].ingest.tracker.open_calls == 0, what="calls closed")
        base = f"http://127.0.0.1:{d.http_port}"
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            async with http.get(base + "/api/v1/openapi.json", headers=AUTH) as r:
                doc = await r.json()
            async with http.get(base + "/api/v1/wallboard", headers=AUTH) as r:
                assert r.status == 200
                body = await r.json()
            check(doc, "/api/v1/wallboard", 200, body)
            support = next(q for q in body["queues"] if q["queue"] == "support")
            assert support["today"]["offered"] == 6 and body["ami_up"] is True and body["day"] == "2026-11-22"
            for path in ("/", "/api/v1/wallboard", "/api/v1/wallboard/events"):
                async with http.get(base + path) as r:
                    assert r.status == 401, path
            async with http.get(base + "/?token=" + TOKEN, allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/"
                raw = r.headers["Set-Cookie"]
            attrs = [a.strip().lower() for a in raw.split(";")]
            assert attrs[0] == f"{COOKIE}={cookie_value(TOKEN)}" and TOKEN not in raw
            assert {"httponly", "samesite=strict", "path=/"} <= set(attrs) and "secure" not in attrs  # plain HTTP
            jar = {"Cookie": f"{COOKIE}={cookie_value(TOKEN)}"}
            async with http.get(base + "/", headers=jar) as r:
                assert r.status == 200 and "default-src 'none'" in r.headers["Content-Security-Policy"]
                assert "/wallboard/wallboard.js" in await r.text()
            for path in ("/api/v1/queues", "/api/v1/calls", "/metrics"):  # the cookie opens the wallboard only
                async with http.get(base + path, headers=jar) as r:
                    assert r.status == 401, path
            async with http.get(base + "/api/v1/wallboard", headers={"Cookie": f"{COOKIE}=forged"}) as r:
                assert r.status == 401
            async with http.get(base + "/api/v1/wallboard?bogus=1", headers=jar) as r:
                assert r.status == 400 and "bogus" in (await r.json())["error"]  # validated like every endpoint
            async with http.post(base + "/api/v1/wallboard", headers=jar) as r:
                assert r.status == 405 and "GET" in r.headers["Allow"]
            async with http.get(base + "/wallboard/wallboard.js") as r:  # no data in it: served to the login page
                assert r.status == 200 and r.content_type == "text/javascript"
            async with http.get(base + "/wallboard/secret.txt", headers=jar) as r:
                assert r.status == 404
            async with http.get(base + "/api/v1/wallboard/events", headers=jar) as events:
                assert events.status == 200 and events.content_type == "text/event-stream"
                first = await _next_event(events)
                assert first["queues"] == body["queues"]  # nothing moved since: the same numbers
                second = await _next_event(events)  # pushed again without asking
                assert second["generated_at"] > first["generated_at"]
                started = time.monotonic()
                d.stop.set()  # a connected screen must not hold the shutdown
                rest = await asyncio.wait_for(events.content.read(), 10)
                # The HTTP cleanup is bounded at 5 s anyway; the stream must end well before that.
                assert time.monotonic() - started < 4 and isinstance(rest, bytes)


async def _next_event(resp: aiohttp.ClientResponse) -> dict[str, object]:
    event = ""
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), 10)).decode().rstrip("\r\n")
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:") and event == "snapshot":
            return dict(json.loads(line[5:].strip()))


async def test_wallboard_off(tmp_path: Path) -> None:
    settings = dataclasses.replace(daemon_settings(tmp_path, 1), wallboard=WallboardSettings(enabled=False))
    async with running(settings) as d, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{d.http_port}"
        async with http.get(base + "/") as r:
            assert r.status == 404
        async with http.get(base + "/api/v1/openapi.json") as r:
            assert "/api/v1/wallboard" not in (await r.json())["paths"]


async def test_callbacks_owed_tile_from_its_provider() -> None:
    """Without a provider the tile is hidden (null); with one, its count per queue is shown."""
    ingest = Ingest(CallTracker(TrackerConfig()))
    owed = {"support": 2}
    wb = Wallboard({"default": BoardPbx(ingest, None, DayTally(), lambda: owed),
                    "other": BoardPbx(Ingest(CallTracker(TrackerConfig())), None, DayTally())},
                   queues=("support", "sales"))
    ctx = ApiContext(QmonMetrics(queues=("support", "sales")), {"default": LivePbx(ingest)})
    runner, port = await start_http(make_app(ctx, wallboard=wb), "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/api/v1/wallboard") as r:
            body = await r.json()
    finally:
        await runner.cleanup()
    got = {(q["pbx"], q["queue"]): q["callbacks_owed"] for q in body["queues"]}
    assert got == {("default", "sales"): 0, ("default", "support"): 2, ("other", "sales"): None,
                   ("other", "support"): None}
    assert body["callbacks_owed_shown"] is True and body["ami_up"] is False
    assert body["ami"][0]["reason"] == "not logged in yet"
