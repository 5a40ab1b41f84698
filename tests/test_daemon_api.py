"""The HTTP API against its own OpenAPI document (jsonschema), bad parameters, the bearer token."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from monitor.settings import SurveySettings
from tests.support.amiserver import AmiTestServer, transcript_messages
from tests.support.daemon import SCENARIOS, daemon_settings, running
from tests.support.helpers import until

pytestmark = pytest.mark.usefixtures("year_after_recordings")  # the wall clock is far from PBX time

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def check(doc: dict[str, Any], path: str, status: int, body: Any, method: str = "get") -> None:
    """Validate a response body against the document's schema for (path, method, status)."""
    responses = doc["paths"][path][method]["responses"]
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
                ("/api/v1/summary", ""), ("/api/v1/agents", ""), ("/api/v1/agents", "?queue=support&agent=agent1"),
                ("/api/v1/callbacks", ""), ("/api/v1/callbacks", "?state=open&queue=support&format=json&limit=1"),
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


ENDPOINTS = ("/metrics", "/healthz", "/readyz", "/api/v1/queues", "/api/v1/calls", "/api/v1/summary",
             "/api/v1/surveys", "/api/v1/openapi.json", "/api/v1/agents", "/api/v1/callbacks")
OTHER_METHODS = ("POST", "PUT", "DELETE", "PATCH", "OPTIONS")
SECURITY = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Server": "qmon"}
# (query, the parameter the error must name); each on every endpoint that takes that parameter.
TIMES = ("since", "from", "to")
BAD_TIME = ("nan", "inf", "-inf", "Infinity", "1e400", "9" * 400, "1e3", "0x10", "1_000", "-5", "99999999999999",
            "2025-02-30", "yesterday", "", " ")
BAD_INT = ("-1", "0", "1001", "99999999999999999999", "1e3", "nan", "", "1.5", "5 0")
ENDPOINT_PARAMS = {"/api/v1/calls": ("since", "queue", "limit"), "/api/v1/summary": ("from", "to"),
                   "/api/v1/surveys": ("from", "to", "queue", "agent", "max_score", "limit"),
                   "/api/v1/agents": ("queue", "agent"), "/api/v1/callbacks": ("state", "queue", "format", "limit")}
CHOICES = ("state", "format")
BAD_CHOICE = ("closed", "JSON", "x" * 300, "", " ")


def bad_queries() -> list[tuple[str, str, str]]:
    """(endpoint, query string, what the error must mention) for every endpoint."""
    out: list[tuple[str, str, str]] = []
    for path in ENDPOINTS:
        takes = ENDPOINT_PARAMS.get(path, ())
        out += [(path, "?bogus=1", "bogus"), (path, "?" + "x" * 300 + "=1", "unknown")]
        for name in takes:
            if name in TIMES:
                out += [(path, f"?{name}={v}", name) for v in BAD_TIME]
            elif name in CHOICES:
                out += [(path, f"?{name}={v}", name) for v in BAD_CHOICE]
            elif name == "limit" and path == "/api/v1/callbacks":  # the worklist's own bound: up to 100000
                out += [(path, f"?{name}={v}", name) for v in (*BAD_INT[:2], "100001", *BAD_INT[3:])]
            elif name in ("limit", "max_score"):
                out += [(path, f"?{name}={v}", name) for v in BAD_INT if not (name == "max_score" and v == "0")]
            else:
                out += [(path, f"?{name}=", name), (path, f"?{name}={'q' * 129}", name)]
            out.append((path, f"?{name}=1&{name}=2", "more than once"))
        if "from" in takes:
            out.append((path, "?from=2025-03-02&to=2025-03-01", "after"))
            out.append((path, "?from=10&to=5", "after"))
    out.append(("/api/v1/surveys", "?max_score=11", "max_score"))
    return out


async def test_methods_parameters_and_headers_table(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Every endpoint x method, every bad parameter: status, JSON error, Allow, no-store/nosniff, no version banner."""
    settings = dataclasses.replace(daemon_settings(tmp_path, 0, token=TOKEN), survey=SurveySettings(
        port=0, state_path=str(tmp_path / "survey.db")))
    caplog.set_level(logging.INFO)
    async with AmiTestServer([]) as srv, running(dataclasses.replace(
            settings, ami=(dataclasses.replace(settings.ami[0], port=srv.port),))) as d:
        await until(lambda: d.sources["default"].connected, what="AMI login")
        base = f"http://127.0.0.1:{d.http_port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/api/v1/openapi.json", headers=AUTH) as r:
                doc = await r.json()
            seen: list[tuple[str, str, int]] = []
            for path in ENDPOINTS:
                for method in ("GET", "HEAD", *OTHER_METHODS):
                    for auth in (AUTH, {}):
                        async with http.request(method, base + path, headers=auth) as r:
                            body = await r.read()
                            for k, v in SECURITY.items():
                                assert r.headers.get(k) == v, (method, path, k, r.headers.get(k))
                            assert "aiohttp" not in r.headers.get("Server", "") and "Python" not in str(r.headers)
                        if not auth and path != "/healthz":
                            # Token first: without it nothing about the route or the method is told.
                            assert r.status == 401, (method, path, r.status)
                            assert r.headers["WWW-Authenticate"].startswith("Bearer")
                        elif method in ("GET", "HEAD"):
                            assert r.status == 200, (method, path, r.status, body[:200])
                            assert (body == b"") == (method == "HEAD")
                        else:
                            assert r.status == 405, (method, path, r.status, body[:200])
                            assert set(r.headers["Allow"].split(",")) == {"GET", "HEAD"}
                            assert r.content_type == "application/json"
                            if path in doc["paths"]:
                                check(doc, path, 405, json.loads(body), method.lower())
                        seen.append((method, path, r.status))
            assert len(seen) == len(ENDPOINTS) * 7 * 2
            cases = bad_queries()
            for path, q, names in cases:
                async with http.get(base + path + q, headers=AUTH) as r:
                    body = await r.json()
                    assert r.status == 400, (path, q, r.status, body)
                    assert names in body["error"], (path, q, body)
                    assert r.headers["Cache-Control"] == "no-store" and r.headers["Server"] == "qmon"
                if path in doc["paths"]:
                    check(doc, path, 400, body)
            async with http.get(base + "/metrics", headers=AUTH) as r:
                exposed = await r.text()
            assert "qmon_survey_sessions_in_progress 0.0" in exposed  # the daemon wires the FastAGI counters
            assert 'qmon_survey_sessions_rejected_total{reason="overloaded"} 0.0' in exposed
            # every problem at once, not only the first
            async with http.get(base + "/api/v1/calls?limit=0&since=nan&x=1", headers=AUTH) as r:
                err = (await r.json())["error"]
            assert r.status == 400 and "limit" in err and "since" in err and "'x'" in err
            # good edge values still pass
            for path, q in (("/api/v1/calls", "?limit=1000&since=0"), ("/api/v1/calls", "?since=2026-01-01T00:00:00Z"),
                            ("/api/v1/summary", "?from=0&to=253402300799"), ("/api/v1/surveys", "?max_score=0"),
                            ("/api/v1/surveys", "?from=2025-03-01&to=2025-03-01&limit=1"),
                            ("/api/v1/summary", "?from=%201700000000.5%20"), ("/api/v1/callbacks", "?limit=100000")):
                async with http.get(base + path + q, headers=AUTH) as r:
                    assert r.status == 200, (path, q, await r.text())
                    check(doc, path, 200, await r.json())
        # Requests aiohttp cannot parse: a 400 each, one log line for all, no traceback.
        junk = [b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]
        for raw in junk * 10:
            reader, writer = await asyncio.open_connection("127.0.0.1", d.http_port)
            writer.write(raw)
            answer = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0], answer[:200]
    assert len(cases) > 120
    assert len([r for r in caplog.records if "unparseable request" in r.getMessage()]) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], "no tracebacks"


async def test_an_unexpected_error_is_a_json_500_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from monitor.web.server import ApiContext, make_app

    class Broken:
        queues: tuple[str, ...] = ()

        def expose(self) -> bytes:
            raise RuntimeError("a bug")

    app = make_app(ApiContext(metrics=Broken()))  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as client:
        r = await client.get("/metrics")
        body = await r.json()
    assert (r.status, body) == (500, {"error": "internal error"})
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Server"] == "qmon"
    (rec,) = [x for x in caplog.records if x.name == "qmon.http"]
    assert rec.exc_info is not None and "GET /metrics" in rec.getMessage()
