"""A real Prometheus scrapes the daemon fed a transcript over real AMI TCP; the documented PromQL equals the
replay report. Also ``promtool check metrics`` on a real scrape."""

from __future__ import annotations

import asyncio
import re
import shutil
from asyncio.subprocess import DEVNULL, PIPE, STDOUT
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.replay import replay_files
from tests.support.amiserver import AmiTestServer, transcript_messages
from tests.support.daemon import FIXTURES, SCENARIOS, daemon_settings, running
from tests.support.helpers import free_port, until

DOC = Path(__file__).parent.parent / "docs" / "metrics.md"
pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None or shutil.which("promtool") is None,
                                reason="Debian package prometheus not installed")


def doc_queries() -> dict[str, str]:
    """The ``<!-- query: name -->`` PromQL blocks of docs/metrics.md."""
    text = DOC.read_text()
    return {m[1]: m[2].strip() for m in re.finditer(r"<!-- query: (\w+) -->\s*```promql\n(.*?)```", text, re.S)}


async def prom(session: aiohttp.ClientSession, base: str, query: str, at: float | None = None) -> list[Any]:
    params = {"query": query} | ({"time": repr(at)} if at is not None else {})
    async with session.get(f"{base}/api/v1/query", params=params) as r:
        body = await r.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


async def test_promql_matches_replay_report(tmp_path: Path) -> None:
    report = replay_files([FIXTURES / f"{s}.ami" for s in SCENARIOS]).report()
    queries = doc_queries()
    assert set(queries) >= {"entered", "service_level", "abandon_rate", "csat", "fcr"}
    msgs = [m for s in SCENARIOS for m in transcript_messages(s)]
    # Wrong secret first: the daemon keeps retrying while Prometheus records every series at 0, so the
    # documented increase() queries see the whole run with no extrapolation.
    srv = await AmiTestServer(msgs, secret="not-yet").start()
    prom_port = free_port()
    proc: asyncio.subprocess.Process | None = None
    try:
        async with running(daemon_settings(tmp_path, srv.port)) as d, aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{d.http_port}/metrics") as r:
                scrape = await r.read()
            check = await asyncio.create_subprocess_exec("promtool", "check", "metrics", stdin=PIPE, stdout=PIPE,
                                                         stderr=STDOUT)
            out, _ = await asyncio.wait_for(check.communicate(scrape), 30)
            assert check.returncode == 0, out.decode()
            cfg = tmp_path / "prometheus.yml"
            cfg.write_text("global: {scrape_interval: 200ms, evaluation_interval: 1s}\nscrape_configs:\n"
                           f"  - job_name: qmon\n    static_configs: [{{targets: ['127.0.0.1:{d.http_port}']}}]\n")
            proc = await asyncio.create_subprocess_exec(
                "prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn", stdout=DEVNULL, stderr=DEVNULL)
            base = f"http://127.0.0.1:{prom_port}"
            zeros = 'count_over_time(qmon_queue_calls_total{queue="support",outcome="answered"}[1h])'
            for _ in range(300):
                try:
                    if await prom(http, base, zeros):
                        break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("Prometheus never scraped qmon")
            srv.secret = "secret"
            await srv.wait_streamed(30)
            pbx = d.pbxs["default"]
            await until(lambda: pbx.ingest.tracker.open_calls == 0, what="every call closed")
            for _ in range(200):
                # Re-read each time: the tail of the stream (member status, list answers) may still be arriving.
                events = pbx.ingest.events
                got = await prom(http, base, "qmon_ami_events_total")
                if got and float(got[0]["value"][1]) == events:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("Prometheus never saw the final event count")
            # Evaluated at the last scrape: increase() then adds no extrapolation at the end either.
            at = float((await prom(http, base, "timestamp(qmon_ami_events_total)"))[0]["value"][1])
            results: dict[str, dict[str, float]] = {}
            for name, q in queries.items():
                rows = await prom(http, base, q.replace("$__range", "1h"), at)
                results[name] = {row["metric"]["queue"]: float(row["value"][1]) for row in rows}
    finally:
        if proc is not None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 10)
        await srv.close()
    for queue, rep in report["queues"].items():
        entered, short = rep["entered"], rep["abandoned_short"]
        assert results["entered"][queue] == entered
        assert results["service_level"][queue] == pytest.approx(rep["service_level"])
        assert results["abandon_rate"][queue] == pytest.approx((rep["abandoned"] - short) / (entered - short))
        assert results["short_abandon_share"][queue] == pytest.approx(short / entered)
        if rep["csat"]["responses"]:
            assert results["csat"][queue] == pytest.approx(rep["csat"]["satisfied_ratio"])
        assert results["fcr"][queue] == pytest.approx(1 - rep["repeat_calls"] / entered)
    # The figures this run proves (support: SL 0.75, abandon 1/8, CSAT 0.4 for the default scenarios).
    print({k: v for k, v in results.items()})
