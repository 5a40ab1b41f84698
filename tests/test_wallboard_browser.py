"""The wallboard in a real browser: Debian's chromium (headless, driven by Playwright) against the daemon replaying a
recorded Asterisk 22 transcript through the AMI test server.

Checks: the token flow (no token -> 401 with a login hint; ?token= -> HttpOnly SameSite=Strict cookie -> the page
works; the cookie opens the wallboard only), the numbers shown equal ``/api/v1/queues`` and ``/api/v1/wallboard``
and the transcript's ground truth, the page updates by itself when events arrive, and AMI down is shown plainly.
Screenshots are kept in the test's tmp dir (docs/wallboard.png comes from ``scripts/wallboard_screenshot.py``).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.core.today import QueueDay
from tests.support.amiserver import AmiTestServer, transcript_messages
from tests.support.builders import member_pause
from tests.support.daemon import daemon_settings, running
from tests.support.helpers import until

playwright = pytest.importorskip("playwright.async_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
TOKEN = "wallboard-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T_MS = 20_000  # per browser step: generous for a loaded 2-core machine; the whole test is bounded below
XSS = "<img src=x onerror=\"document.title='owned'\">"
# concurrent.ami: the last Timestamp of the capture (PBX clock); pushed events follow it.
LAST_TS = 1795381278.938007

pytestmark = [
    pytest.mark.usefixtures("year_after_recordings"),  # the wall clock is far from PBX time
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


def _join(n: int, ts: float) -> dict[str, str]:
    """A caller entering ``support`` (QueueCallerJoin as Asterisk 22 sends it, see concurrent.ami)."""
    return {"Event": "QueueCallerJoin", "Privilege": "agent,all", "Timestamp": f"{ts:.6f}",
            "Channel": f"Local/55519{n:02d}@lab-callers-000000{n:02d};2", "ChannelState": "6",
            "ChannelStateDesc": "Up", "CallerIDNum": f"55519{n:02d}", "CallerIDName": f"Caller {n}",
            "ConnectedLineNum": f"55519{n:02d}", "ConnectedLineName": f"Caller {n}", "Language": "en",
            "AccountCode": "", "Context": "lab-entry", "Exten": "support", "Priority": "4",
            "Uniqueid": f"1795381290.{n}", "Linkedid": f"1795381290.{n + 50}", "Queue": "support",
            "Position": "1", "Count": "1"}


async def _tiles(page: Any, pbx: str, queue: str) -> dict[str, Any]:
    """Every tile's raw value (data-value) and shown text of one queue card."""
    return dict(await page.eval_on_selector_all(
        f'article.queue[data-pbx="{pbx}"][data-queue="{queue}"] .tile',
        "ts => ts.map(t => [t.dataset.field, {value: JSON.parse(t.dataset.value),"
        " text: t.querySelector('.value').textContent}])"))


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{int(x * 100 + 0.5)}%"  # JavaScript's Math.round


async def _get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url, headers=AUTH) as r:
        assert r.status == 200, (url, r.status)
        return await r.json()


async def _wait_text(page: Any, selector: str, text: str) -> None:
    await page.wait_for_function("([s, t]) => { const e = document.querySelector(s); return e && "
                                 "e.textContent.includes(t); }", arg=[selector, text], timeout=T_MS)


async def test_wallboard_in_chromium(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    async with asyncio.timeout(60), AmiTestServer(transcript_messages("concurrent")) as srv:  # the whole test
        settings = daemon_settings(tmp_path, srv.port, token=TOKEN)
        async with running(settings) as d, aiohttp.ClientSession() as http, async_playwright() as pw:
            await srv.wait_streamed(30)
            pbx = d.pbxs["default"]
            await until(lambda: pbx.ingest.tracker.open_calls == 0, what="the transcript's calls closed")
            base = f"http://127.0.0.1:{d.http_port}"
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=T_MS * 2)
            try:
                page = await (await browser.new_context(viewport={"width": 1920, "height": 1080})).new_page()
                await _token_flow(page, base)
                owed = [o for o in pbx.ingest.tracker.owed.open() if o.queue == "support"]
                await _agrees_with_api(page, http, base, len(owed))
                await _updates(page, http, srv, base, tmp_path)
                await srv.close()  # Asterisk gone: the reconnects are refused
                await _wait_text(page, "#banner", "AMI default DOWN")
                assert await page.eval_on_selector("body", "b => b.dataset.amiUp") == "false"
                assert await page.locator("article.queue.stale").count() >= 1
                assert await page.locator("#agents tbody tr.stale").count() == 2
                await page.screenshot(path=str(tmp_path / "wallboard-ami-down.png"), full_page=True)
                d.stop.set()  # qmon itself gone: the screen says so instead of freezing the numbers
                await _wait_text(page, "#banner", "qmon unreachable")
                assert await page.eval_on_selector("body", "b => b.dataset.stale") == "true"
            finally:
                await browser.close()


async def _token_flow(page: Any, base: str) -> None:
    resp = await page.goto(base + "/", timeout=T_MS)
    assert resp.status == 401
    assert "not logged in" in await page.text_content("#login-hint")
    assert await page.locator("link[rel=stylesheet]").count() == 1  # styled from the package, no CDN
    resp = await page.goto(base + "/?token=wrong", timeout=T_MS)
    assert resp.status == 401 and "not right" in await page.text_content("#login-hint")
    resp = await page.goto(base + f"/?token={TOKEN}", timeout=T_MS)
    assert resp.status == 200 and page.url == base + "/"  # the token left the address bar
    [cookie] = await page.context.cookies()
    assert cookie["name"] == "qmon_wallboard" and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert TOKEN not in cookie["value"]
    assert await page.evaluate("document.cookie") == ""  # HttpOnly: no script reads it
    # The cookie opens the wallboard, not the rest of the API.
    status = await page.evaluate("async u => (await fetch(u)).status", base + "/api/v1/wallboard")
    assert status == 200
    status = await page.evaluate("async u => (await fetch(u)).status", base + "/api/v1/queues")
    assert status == 401
    await page.wait_for_selector('article.queue[data-queue="support"]', timeout=T_MS)


async def _agrees_with_api(page: Any, http: aiohttp.ClientSession, base: str, owed: int) -> None:
    queues = await _get(http, base + "/api/v1/queues")
    board = await _get(http, base + "/api/v1/wallboard")
    shown = await _tiles(page, "default", "support")
    live = next(q for q in queues["queues"] if q["queue"] == "support")
    assert shown["waiting_calls"]["value"] == live["waiting_calls"] == 0
    for state in ("available", "in_call", "paused"):
        assert shown[state]["value"] == live["member_counts"][state], state
        assert shown[state]["text"] == str(live["member_counts"][state])
    today = next(q for q in board["queues"] if q["queue"] == "support")["today"]
    # concurrent.facts.json: 6 entered, 4 answered (waits 2, 2, 7, 8 s), abandons at 4 s (short) and 9 s,
    # CSAT 5, 3, 1.
    truth = QueueDay(offered=6, answered=4, answered_within=4, abandoned=2, abandoned_within=2, abandoned_short=1,
                     csat_sum=9, csat_n=3)
    assert (today["offered"], today["answered"], today["abandoned"], today["abandoned_short"]) == (6, 4, 2, 1)
    assert today["service_level"] == truth.service_level() == 0.8 and today["sl_rag"] == "green"
    assert shown["service_level"]["value"] == today["service_level"] and shown["service_level"]["text"] == "80%"
    assert shown["abandon_rate"]["value"] == today["abandon_rate"]
    assert shown["abandon_rate"]["text"] == _pct(truth.abandon_rate()) == "33%" and today["abandon_rag"] == "red"
    assert shown["csat_mean"]["value"] == today["csat_mean"] == 3.0 and shown["csat_mean"]["text"] == "3.0"
    # The two callers who hung up (5551104, 5551106) are owed a call: the tracker's worklist, on the board.
    assert shown["callbacks_owed"]["value"] == owed == 2 and shown["callbacks_owed"]["text"] == "2"
    assert shown["service_level"]["value"] == truth.service_level("offered_no_short")  # the configured default
    sl_def = await page.text_content('article.queue[data-queue="support"] [data-field="sl_definition"]')
    assert sl_def == "SL = answered within 20 s ÷ (offered - short abandons)"
    rag = await page.eval_on_selector('article.queue[data-queue="support"] .tile[data-field="service_level"]',
                                      "t => t.className")
    assert "rag-green" in rag
    rows = await page.eval_on_selector_all("#agents tbody tr", "rs => rs.map(r => [r.dataset.agent, "
                                           "r.querySelector('[data-field=answered_today]').textContent])")
    api_rows = [[r["agent"], str(r["answered_today"])] for r in board["agents"]]
    assert rows == api_rows and sum(int(n) for _, n in rows) == 4


async def _updates(page: Any, http: aiohttp.ClientSession, srv: AmiTestServer, base: str, tmp: Path) -> None:
    await srv.push(_join(1, LAST_TS + 2.0))
    await srv.push(member_pause("agent1", "lunch", LAST_TS + 3.0))
    await srv.push(member_pause("agent2", XSS, LAST_TS + 3.5))  # pause reasons are free text typed on a phone
    card = 'article.queue[data-queue="support"]'
    await _wait_text(page, f'{card} .tile[data-field="waiting_calls"] .value', "1")
    await _wait_text(page, f"{card} .paused", "agent1 — lunch")
    await page.wait_for_function(f"() => document.querySelector('{card} .tile[data-field=\"longest_wait_s\"]')"
                                 ".dataset.value > 0", timeout=T_MS)
    queues = await _get(http, base + "/api/v1/queues")
    live = next(q for q in queues["queues"] if q["queue"] == "support")
    shown = await _tiles(page, "default", "support")
    assert shown["waiting_calls"]["value"] == live["waiting_calls"] == 1
    assert shown["paused"]["value"] == live["member_counts"]["paused"] == 2
    # Shown as text, never run as HTML.
    assert XSS in (await page.text_content(f"{card} .paused") or "") and await page.title() == "qmon wallboard"
    assert await page.locator(f"{card} .paused img").count() == 0
    # Waits are on the PBX clock: seconds since the join, not a year (the wall clock is a year after the capture).
    assert 0 < shown["longest_wait_s"]["value"] < 60 and abs(shown["longest_wait_s"]["value"]
                                                              - live["longest_wait_s"]) < 15
    row = page.locator('#agents tbody tr[data-agent="agent1"] [data-field="state"]')
    assert "paused (lunch)" in (await row.text_content() or "")
    await page.screenshot(path=str(tmp / "wallboard.png"), full_page=True)
    board = await _get(http, base + "/api/v1/wallboard")
    (tmp / "wallboard.json").write_text(json.dumps(board, indent=1))
