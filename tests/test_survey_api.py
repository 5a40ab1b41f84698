"""/api/v1/surveys, the low-score webhook (real aiohttp server) and ``qmon optout``."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from monitor.cli import main
from monitor.core.survey import SurveyResultRecord
from monitor.settings import StoreSettings
from monitor.store import Store
from monitor.survey.results import Webhook
from monitor.web.surveys import add_survey_routes

DAY = datetime(2025, 3, 3, tzinfo=UTC).timestamp()


def rec(csat: int | None, queue: str = "support", agent: str = "agent1", ts: float = DAY + 3600,
        status: str = "completed", lid: str = "L") -> SurveyResultRecord:
    return SurveyResultRecord(lid, "U", "5551001", queue, agent, status, csat, None, None, "", "en", "agi", ts, ts)


async def test_surveys_api_filters_and_validates(tmp_path: Path) -> None:
    store = Store(StoreSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'q.db'}", journal_path=str(tmp_path / "j"),
                                flush_interval_s=0.05))
    await store.start()
    writer = asyncio.create_task(store.run())
    for i, r in enumerate((rec(5), rec(1, agent="agent2"), rec(2, queue="sales"), rec(None, status="no_input"),
                           rec(1, ts=DAY + 2 * 86400))):
        store.submit_survey(dataclasses.replace(r, linkedid=f"L{i}"))
    assert await store.drain(10)
    await writer
    app = web.Application()
    add_survey_routes(app, store.query_surveys)
    async with TestClient(TestServer(app)) as client:
        async def get(q: str) -> list[dict[str, object]]:
            resp = await client.get("/api/v1/surveys" + q)
            assert resp.status == 200
            body = await resp.json()
            assert body["count"] == len(body["surveys"])
            return list(body["surveys"])

        assert len(await get("")) == 5
        assert [s["csat"] for s in await get("?max_score=2&from=2025-03-03&to=2025-03-04")] == [2, 1]
        assert [s["agent"] for s in await get("?queue=support&max_score=1")] == ["agent1", "agent2"]  # newest first
        assert len(await get(f"?from={DAY + 86400}")) == 1
        assert len(await get("?agent=agent1&limit=1")) == 1
        for bad in ("?from=yesterday", "?max_score=11", "?limit=0", "?from=2025-03-05&to=2025-03-04"):
            resp = await client.get("/api/v1/surveys" + bad)
            assert resp.status == 400, bad
            assert "error" in await resp.json()
    await store.close()


async def test_webhook_posts_low_scores_with_retry() -> None:
    hits: list[dict[str, object]] = []
    fails = [500, 503]

    async def hook(request: web.Request) -> web.Response:
        if fails:
            return web.Response(status=fails.pop(0))
        hits.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with TestServer(app) as server:
        wh = Webhook(str(server.make_url("/hook")), max_score=2, retries=3, backoff_s=0.01)
        task = asyncio.create_task(wh.run())
        assert [wh.submit(r) for r in (rec(5), rec(2), rec(None, status="no_input"))] == [False, True, False]
        await wh.drain(5)
        task.cancel()
    assert len(hits) == 1 and hits[0]["event"] == "survey.low_score"
    assert hits[0]["survey"]["csat"] == 2 and hits[0]["survey"]["caller"] == "5551001"  # type: ignore[index]
    assert wh.stats == {"sent": 1, "failed": 0, "dropped": 0, "retries": 2}


async def test_webhook_gives_up_after_retries() -> None:
    async def hook(request: web.Request) -> web.Response:
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with TestServer(app) as server:
        wh = Webhook(str(server.make_url("/hook")), retries=2, backoff_s=0.01)
        task = asyncio.create_task(wh.run())
        wh.submit(rec(1))
        await wh.drain(5)
        task.cancel()
    assert wh.stats["failed"] == 1 and wh.stats["retries"] == 2


def test_optout_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = {"QMON_SURVEY_STATE_PATH": str(tmp_path / "s.db")}
    assert main(["optout", "add", "+48 555 100 200"], env) == 0
    assert main(["optout", "add", "+48555100200"], env) == 1  # already there (normalised)
    assert main(["optout", "list"], env) == 0
    assert "+48555100200\t" in capsys.readouterr().out
    assert main(["optout", "add", "anonymous"], env) == 2
    assert main(["optout", "add"], env) == 2
    assert main(["optout", "remove", "+48555100200"], env) == 0
    assert main(["optout", "remove", "+48555100200"], env) == 1
    capsys.readouterr()
    assert main(["optout", "list", "--state", str(tmp_path / "s.db")], env) == 0
    assert capsys.readouterr().out == ""
