"""The HTTP API against its own OpenAPI document (jsonschema), bad parameters, the bearer token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from tests.support.amiserver import AmiTestServer, transcript_messages
from tests.support.daemon import SCENARIOS, daemon_settings, running
from tests.support.helpers import until

pytestmark = pytest.mark.usefixtures("year_after_recordings")  # the wall clock is far from PBX time

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def check(doc: dict[str, Any], path: str, status: int, body: Any) -> None:
    """Validate a response body against the document's schema for (path, status)."""
    responses = doc["paths"][path]["get"]["responses"]
    spec = responses[str(status)]
    if "$ref" in spec:
        spec = doc["components"]["responses"][spec["$ref"].rsplit("/", 1)[1]]
    schema = {**spec["content"]["application/json"]["schema"], "components": doc["components"]}
    jsonschema.Draft202012Validator(schema).validate(body)


async def test_api_matches_openapi_and_token_enforced(tmp_path: Path) -> None:
    msgs = [m for s in SCENARIOS for m in transcript_messages(s)]
    async with AmiTestServer(msgs) as srv, running(daemon_settings(tmp_path, srv.port, token=TOKEN)) as d:
        await srv.wait_streamed(30)
        pbx = d.pbxs["default"]
        await until(lambda: pbx.ingest.tracker.open_calls == 0 and d.store.stats["calls_written"] >= 10, what="stored")
        base = f"http://127.0.0.1:{d.http_port}"
        async with aiohttp.ClientSession() as http:
            for path in ("/metrics", "/readyz", "/api/v1/queues", "/api/v1/calls", "/api/v1/openapi.json"):
                async with http.get(base + path) as r:
                    assert r.status == 401, path
                    assert r.headers["WWW-Authenticate"].startswith("Bearer")
                async with http.get(base + path, headers={"Authorization": "Bearer wrong"}) as r:
                    assert r.status == 401, path
            async with http.get(base + "/healthz") as r:
                assert r.status == 200  # liveness stays open for orchestrators
            async with http.get(base + "/api/v1/openapi.json", headers=AUTH) as r:
                doc = await r.json()
            jsonschema.Draft202012Validator.check_schema({"$defs": doc["components"]["schemas"]})
            good = [
                ("/api/v1/queues", ""), ("/api/v1/calls", ""), ("/api/v1/calls", "?limit=3&queue=support"),
                ("/api/v1/calls", "?since=2026-01-01T00:00:00Z"), ("/api/v1/summary", "?from=0&to=4102444800"),
                ("/api/v1/summary", ""),
            ]
            bodies: dict[str, Any] = {}
            for path, query in good:
                async with http.get(base + path + query, headers=AUTH) as r:
                    body = await r.json()
                    assert r.status == 200, (path, query, body)
                check(doc, path, 200, body)
                bodies[path + query] = body
            bad = [("/api/v1/calls", "?limit=0"), ("/api/v1/calls", "?limit=x"), ("/api/v1/calls", "?since=yesterday"),
                   ("/api/v1/calls", "?bogus=1"), ("/api/v1/summary", "?from=10&to=5"),
                   ("/api/v1/summary", "?to=nan")]
            for path, query in bad:
                async with http.get(base + path + query, headers=AUTH) as r:
                    body = await r.json()
                    assert r.status == 400, (path, query, body)
                check(doc, path, 400, body)
            async with http.get(base + "/readyz", headers=AUTH) as r:
                assert r.status == 200 and (await r.json())["ready"] is True
    summary = bodies["/api/v1/summary?from=0&to=4102444800"]
    assert summary["queues"]["support"]["service_level"] == 0.75 and summary["calls"] == 10
    assert bodies["/api/v1/calls?limit=3&queue=support"]["count"] == 3
    live = bodies["/api/v1/queues"]["queues"]
    assert {q["queue"] for q in live} == {"support", "sales"} and all(q["waiting_calls"] == 0 for q in live)


async def test_readyz_explains_why_not_ready(tmp_path: Path) -> None:
    async with AmiTestServer([], secret="other") as srv, running(daemon_settings(tmp_path, srv.port)) as d:
        await until(lambda: bool(d.sources["default"].last_error), what="a login failure")
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{d.http_port}/readyz") as r:
            body = await r.json()
    assert r.status == 503 and body["ready"] is False
    assert "ami default" in body["reason"] and body["store"]["ok"] is True
