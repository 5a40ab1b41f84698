"""Survey results in the store, on SQLite and PostgreSQL: callbacks update stored calls, nothing counted twice."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from monitor.core.records import CallRecord
from monitor.core.survey import SurveyResultRecord
from monitor.store import Store
from monitor.store.models import SurveyResult
from monitor.web.surveys import SurveyQuery, add_survey_routes
from tests.support.store import DB, outage_control
from tests.test_store_engines import replay

NO_SURVEY = "1795380973.0"  # 5551002, answered by agent1 in support, no survey in the transcript
NO_SURVEY_2 = "1795381163.0"  # 5551011, answered by agent1, no survey
INVALID = "1795381176.0"  # 5551012, its UserEvent survey was INVALID
ANSWERED_4 = "1795380955.0"  # 5551001, its UserEvent survey answered 4


def call(linkedid: str) -> CallRecord:
    """The replayed record of one call."""
    return next(r for r in replay().records if r.linkedid == linkedid)


def result(linkedid: str | None, status: str = "completed", csat: int | None = 4, *, source: str = "callback",
           at: float | None = None, queue: str | None = "support", agent: str | None = "agent1",
           caller: str | None = None, reason: str = "ok") -> SurveyResultRecord:
    """A survey result for a replayed call (or a free-standing one when ``linkedid`` is not a replayed call)."""
    rec = next((r for r in replay().records if r.linkedid == linkedid), None)
    start = at if at is not None else (rec.end_ts + 600.0 if rec else 1795381000.0)
    return SurveyResultRecord(
        linkedid, rec.call_id if rec else None, caller or (rec.caller if rec else None), queue, agent, status,
        csat, None, None, str(csat) if csat is not None else "", "en", source, start, start + 20.0, reason)


async def run_store(db: DB, submit: Any, **settings: Any) -> Store:
    """A store that runs ``submit(store)``, drains (everything must reach the DB) and is then closed."""
    store = Store(db.settings(**settings))
    await store.start()
    task = asyncio.create_task(store.run(), name="store-writer")
    submit(store)
    assert await store.drain(10) is True
    await task
    await store.close()
    return store


async def reader(db: DB, **settings: Any) -> Store:
    """A started store used only to read (it leaves the journal to the writing stores)."""
    store = Store(db.settings(**settings))
    await store.start(journal=False)
    return store


def csat(summary: dict[str, Any], queue: str = "support") -> dict[str, Any]:
    """The CSAT block of one queue."""
    out: dict[str, Any] = summary["queues"][queue]["csat"]
    return out


async def store_replay(db: DB, **settings: Any) -> None:
    """Every replayed call stored."""
    await run_store(db, lambda s: [s.submit(r) for r in replay().records], **settings)


async def test_callback_updates_stored_call_once(db: DB) -> None:
    """A callback answer for a stored call without a survey counts once, however often it is submitted."""
    await store_replay(db)
    rd = await reader(db)
    before = csat(await rd.summary(0, 2e9))
    assert before["responses"] == 10 and before["invalid"] == 1
    cb = result(NO_SURVEY, csat=4)
    first = await run_store(db, lambda s: [s.submit_survey(cb), s.submit_survey(cb)])
    assert first.stats["surveys_written"] == 1 and first.stats["duplicates"] == 1
    assert first.stats["surveys_attached"] == 1
    again = await run_store(db, lambda s: s.submit_survey(cb))  # a restart replaying the same result
    assert again.stats["surveys_written"] == 0 and again.stats["duplicates"] == 1
    after = csat(await rd.summary(0, 2e9))
    assert after["responses"] == 11 and after["scores"]["4"] == before["scores"]["4"] + 1
    (stored,) = [r for r in await rd.records(0, 2e9) if r.linkedid == NO_SURVEY]
    assert stored.survey is not None and (stored.survey.status, stored.survey.score) == ("OK", 4)
    assert stored.survey.source == "callback"
    # A call that already has its answer keeps it (equal rank: never a second response for the call) ...
    await run_store(db, lambda s: s.submit_survey(result(ANSWERED_4, csat=1)))
    # ... while an answer beats the INVALID the caller typed during the call.
    await run_store(db, lambda s: s.submit_survey(result(INVALID, csat=5)))
    final = csat(await rd.summary(0, 2e9))
    assert final["responses"] == 12 and final["invalid"] == 0
    assert final["scores"]["1"] == before["scores"]["1"] and final["scores"]["5"] == before["scores"]["5"] + 1
    rows = await rd.query_surveys(since=None, until=None, queue=None, agent=None, max_score=None, limit=100)
    assert [(r["linkedid"], r["csat"]) for r in rows] == [(INVALID, 5), (NO_SURVEY, 4), (ANSWERED_4, 1)]
    assert rows[1]["call_id"] == "1795380973.1" and rows[1]["caller"] == "5551002"
    await rd.close()


async def test_agi_result_before_its_call_is_consistent(db: DB) -> None:
    """AGI results stored while the call is still open: once the call is stored it counts exactly once."""
    attached, lost = call(NO_SURVEY), call(NO_SURVEY_2)
    agi = result(NO_SURVEY, csat=5, source="agi", at=attached.end_ts - 30.0)
    agi2 = result(NO_SURVEY_2, "no_input", None, source="agi", at=lost.end_ts - 30.0)
    # The results reach the database before the calls close (another batch, another run).
    await run_store(db, lambda s: [s.submit_survey(agi), s.submit_survey(agi2)])
    # The tracker attached the first answer to its call; the second call closed without it (not found).
    with_survey = replace(attached, survey=replace(agi.to_survey(), queue="support", agent="agent1"))
    others = [r for r in replay().records if r.linkedid not in (NO_SURVEY, NO_SURVEY_2)]
    await run_store(db, lambda s: [s.submit(r) for r in [*others, with_survey, lost]])
    rd = await reader(db)
    got = csat(await rd.summary(0, 2e9))
    assert got["responses"] == 11 and got["scores"]["5"] == 6 and got["no_input"] == 2
    by_lid = {r.linkedid: r for r in await rd.records(0, 2e9)}
    assert by_lid[NO_SURVEY].survey == with_survey.survey
    sv = by_lid[NO_SURVEY_2].survey
    assert sv is not None and (sv.status, sv.queue, sv.agent, sv.source) == ("NOINPUT", "support", "agent1", "agi")
    # The same result and call again, in one batch this time (result first): still once.
    await run_store(db, lambda s: [s.submit_survey(agi), s.submit(with_survey), s.submit_survey(agi2)])
    assert csat(await rd.summary(0, 2e9)) == got
    await rd.close()


async def test_not_asked_and_declined_stored_never_counted(db: DB) -> None:
    """not_eligible / declined / hangup / unreachable: queryable, never CSAT responses; cooldown only if asked."""
    await store_replay(db)
    rd = await reader(db)
    before = csat(await rd.summary(0, 2e9))
    results = [
        result(NO_SURVEY, "not_eligible", None, source="agi", reason="cooldown"),
        result(NO_SURVEY_2, "declined", None),
        result(NO_SURVEY_2, "hangup", None, at=call(NO_SURVEY_2).end_ts + 900.0),
        result("1795381260.4", "unreachable", None, reason="originate failed 3 times"),
    ]
    await run_store(db, lambda s: [s.submit_survey(r) for r in results])
    assert csat(await rd.summary(0, 2e9)) == before
    rows = await rd.query_surveys(since=None, until=None, queue=None, agent=None, max_score=None, limit=100)
    assert sorted(r["status"] for r in rows) == ["declined", "hangup", "not_eligible", "unreachable"]
    assert {r["reason"] for r in rows} >= {"cooldown", "originate failed 3 times"}
    assert await rd.query_surveys(since=None, until=None, queue=None, agent=None, max_score=5, limit=100) == []
    # The cooldown: declining was an answer of sorts; not being asked (or reached) is not.
    assert await rd.last_survey_at("5551002") is None
    assert await rd.last_survey_at("5551102") is None
    assert await rd.last_survey_at("5551011") == results[2].ended_ts
    await rd.close()


async def test_query_filters_and_hashed_callers(db: DB) -> None:
    """queue, agent, max_score (csat <= it), [from, to) on the end time, limit; newest first."""
    t = 1795390000.0
    specs = [("support", "agent1", 1), ("support", "agent2", 2), ("sales", "agent3", 5), ("support", "agent1", 4),
             ("sales", "agent3", 2), ("support", "agent2", None)]
    recs = [result(f"x{i}", "completed" if s is not None else "no_input", s, source="agi", at=t + 100 * i,
                   queue=q, agent=a, caller=f"555020{i}") for i, (q, a, s) in enumerate(specs)]
    await run_store(db, lambda s: [s.submit_survey(r) for r in recs])
    rd = await reader(db)

    async def lids(**kw: Any) -> list[str]:
        args: dict[str, Any] = dict(since=None, until=None, queue=None, agent=None, max_score=None, limit=100)
        return [r["linkedid"] for r in await rd.query_surveys(**(args | kw))]

    assert await lids() == ["x5", "x4", "x3", "x2", "x1", "x0"]
    assert await lids(queue="sales") == ["x4", "x2"]
    assert await lids(agent="agent1") == ["x3", "x0"]
    assert await lids(max_score=2) == ["x4", "x1", "x0"]
    assert await lids(max_score=2, queue="support", agent="agent2") == ["x1"]
    ends = [r.ended_ts for r in recs]
    assert await lids(since=ends[1], until=ends[4]) == ["x3", "x2", "x1"]
    assert await lids(limit=2) == ["x5", "x4"]
    (row,) = await rd.query_surveys(since=None, until=None, queue=None, agent=None, max_score=1, limit=5)
    assert row | {"call_id": None} == {
        "pbx": "default", "call_id": None, "linkedid": "x0", "uniqueid": None, "caller": "5550200",
        "queue": "support", "agent": "agent1", "status": "completed", "csat": 1, "nps": None, "ces": None,
        "raw": "1", "language": "en", "source": "agi", "started_ts": t, "ended_ts": t + 20.0, "reason": "ok"}
    await rd.close()
    # With hashing on, the stored caller is an HMAC and the API shows no number (a hash cannot be dialled).
    hashed = dict(hash_callers=True, hash_salt="s3cret")
    await run_store(db, lambda s: s.submit_survey(result("h1", caller="5559999", at=t + 5000)), **hashed)
    hr = await reader(db, **hashed)
    assert hr.engine is not None
    async with hr.engine.connect() as conn:
        stored = (await conn.execute(select(SurveyResult.caller).where(SurveyResult.linkedid == "h1"))).scalar_one()
    assert stored is not None and re.fullmatch(r"[0-9a-f]{64}", stored)
    (top, *_) = await hr.query_surveys(since=None, until=None, queue=None, agent=None, max_score=None, limit=1)
    assert top["linkedid"] == "h1" and top["caller"] is None
    assert await hr.last_survey_at("5559999") == t + 5020.0
    await hr.close()


async def _count_results(store: Store) -> int:
    assert store.engine is not None
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(SurveyResult))).scalar_one())


async def test_results_journaled_while_db_down_stored_once(db: DB) -> None:
    """DB down: results go to the journal; back up: replayed in order, stored once, the call updated once."""
    await store_replay(db)
    cb, other = result(NO_SURVEY, csat=2), result(NO_SURVEY_2, "declined", None)
    async with outage_control(db) as outage:
        store = Store(db.settings(url=outage.url))
        await store.start()
        task = asyncio.create_task(store.run(), name="store-writer")
        await outage.down()
        for r in (cb, cb, other):
            store.submit_survey(r)
            await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        end = loop.time() + 10
        while store.stats["journal_lines"] < 3 or store.stats["db_up"]:
            assert loop.time() < end, "results never journaled, or the outage never seen"
            await asyncio.sleep(0.02)
        await outage.up()
        while store.journal.size or store.stats["surveys_written"] < 2:
            assert loop.time() < end + 15, "journal never replayed"
            await asyncio.sleep(0.02)
        assert await store.drain(5) is True
        await task
        assert store.stats["surveys_written"] == 2 and store.stats["duplicates"] == 1
        assert store.stats["journal_lines"] == 0 and store.journal.size == 0
        assert await _count_results(store) == 2
        assert csat(await store.summary(0, 2e9))["responses"] == 11
        await store.close()


async def test_survey_api_over_http(db: DB) -> None:
    """``add_survey_routes`` backed by the store answers real HTTP requests (who to call back)."""
    await store_replay(db)
    await run_store(db, lambda s: [s.submit_survey(result(NO_SURVEY, csat=1)),
                                   s.submit_survey(result(NO_SURVEY_2, csat=5)),
                                   s.submit_survey(result("1795381260.4", "declined", None, agent="agent2"))])
    rd = await reader(db)
    query: SurveyQuery = rd.query_surveys
    app = web.Application()
    add_survey_routes(app, query)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/api/v1/surveys", params={"max_score": "2", "queue": "support"})
        assert resp.status == 200
        body = await resp.json()
        assert body["count"] == 1
        (row,) = body["surveys"]
        assert (row["caller"], row["call_id"], row["csat"], row["agent"]) == ("5551002", "1795380973.1", 1, "agent1")
        resp = await client.get("/api/v1/surveys", params={"from": "2026-11-22", "agent": "agent2"})
        assert [r["status"] for r in (await resp.json())["surveys"]] == ["declined"]
        resp = await client.get("/api/v1/surveys", params={"to": "1795380000"})
        assert (await resp.json())["count"] == 0
        assert (await client.get("/api/v1/surveys", params={"max_score": "x"})).status == 400
    await rd.close()
