"""The survey server inside the daemon: a real FastAGI conversation on a call the daemon tracks from a real
AMI stream ends up once in the store, the API and the metrics; a caller who hung up gets a callback Originate."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest

from monitor.ami.wire import WireParser
from monitor.settings import SurveySettings
from tests.support.agiclient import agi_headers, asterisk_reply, run_caller
from tests.support.amiserver import AmiTestServer, transcript_messages
from tests.support.daemon import daemon_settings, running
from tests.support.helpers import until

pytestmark = pytest.mark.usefixtures("year_after_recordings")  # the wall clock is far from PBX time


def _cut_before_survey(scenario: str) -> tuple[list[bytes], list[bytes]]:
    """The stream up to QUEUESTATUS=CONTINUE (caller back from Queue, call open) and the rest."""
    msgs = transcript_messages(scenario)
    p = WireParser(expect_banner=False)
    for i, m in enumerate(msgs):
        (h,) = p.feed(m)
        if h.get("Variable") == "QUEUESTATUS" and h.get("Value") == "CONTINUE":
            return msgs[: i + 1], msgs[i + 1:]
    raise AssertionError("no CONTINUE")


def _sample(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            got = ",".join(sorted(line[len(name) + 1: line.index("}")].split(",")))
            if got == want:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_agi_survey_and_callback_through_the_daemon(tmp_path: Path) -> None:
    head, tail = _cut_before_survey("answered_agent_hangup")
    # The dialplan survey's own UserEvent would be a second answer: this PBX uses the AGI survey instead.
    tail = [m for m in tail if b"UserEvent: CSAT" not in m]
    caller_hangs_up = transcript_messages("answered_caller_hangup")
    async with AmiTestServer(head) as srv:
        base = daemon_settings(tmp_path, srv.port)
        settings = dataclasses.replace(base, survey=SurveySettings(
            port=0, state_path=str(tmp_path / "survey.db"), callback_enabled=True,
            callback_channel="Local/{number}@qmon-out", callback_delay_s=0.0))
        async with running(settings) as d:
            assert d.survey_port
            await srv.wait_streamed()
            await until(lambda: d.pbxs["default"].ingest.find_call("1795380955.1", None) is not None, what="open call")
            session = await run_caller(d.survey_port, agi_headers("1795380955.1", "1795380955.0"), ["5"])
            assert session.variables.get("QMON_SURVEY_STATUS") == "completed"
            for m in tail + caller_hangs_up:
                p = WireParser(expect_banner=False)
                for h in p.feed(m):
                    await srv.push(h)
            # The caller of the second call hung up on the agent: a callback survey is originated over AMI.
            await until(lambda: srv.actions_named("Originate"), what="callback originate")
            orig = srv.actions_named("Originate")[0]
            assert orig["Channel"] == "Local/5551002@qmon-out" and orig["Context"] == "qmon-survey-callback"
            await until(lambda: d.store.stats.get("calls_written", 0) == 2, what="2 calls written")
            await until(lambda: d.store.stats.get("surveys_written", 0) >= 1, what="survey result written")
            async with aiohttp.ClientSession() as http:
                base_url = f"http://127.0.0.1:{d.http_port}"
                async with http.get(f"{base_url}/api/v1/surveys") as r:
                    rows = (await r.json())
                async with http.get(f"{base_url}/metrics") as r:
                    metrics = await r.text()
                async with http.get(f"{base_url}/api/v1/summary", params={"from": "0", "to": "4000000000"}) as r:
                    summary = await r.json()
            items = rows["surveys"] if isinstance(rows, dict) else rows
            assert [(x["status"], x["csat"], x["queue"], x["agent"]) for x in items] == [
                ("completed", 5, "support", "agent1")]
            lab = {"pbx": "default", "queue": "support"}
            assert _sample(metrics, "qmon_csat_responses_total", score="5", **lab) == 1
            assert _sample(metrics, "qmon_survey_outcomes_total", result="completed", **lab) == 1
            csat = summary["queues"]["support"]["csat"] if "queues" in summary else summary["report"]["queues"][
                "support"]["csat"]
            assert (csat["responses"], csat["scores"]["5"]) == (1, 1)  # once, though it reached the store twice


async def test_a_survey_running_at_shutdown_is_stored_with_its_answers(tmp_path: Path) -> None:
    """SIGTERM while a caller is between two questions: the daemon waits its grace period (5 s), cuts the survey,
    and the CSAT already given reaches the database (reason ``qmon_shutdown``) before the writer drains."""
    head, _ = _cut_before_survey("answered_agent_hangup")
    async with AmiTestServer(head) as srv:
        base = daemon_settings(tmp_path, srv.port)
        settings = dataclasses.replace(base, survey=SurveySettings(port=0, state_path=str(tmp_path / "survey.db"),
                                                                   ask_nps=True))
        async with running(settings) as d:
            assert d.survey_port
            await srv.wait_streamed()
            await until(lambda: d.pbxs["default"].ingest.find_call("1795380955.1", None) is not None, what="open call")
            reader, writer = await asyncio.open_connection("127.0.0.1", d.survey_port)
            headers = agi_headers("1795380955.1", "1795380955.0")
            writer.write("".join(f"{k}: {v}\n" for k, v in headers.items()).encode() + b"\n")
            asked = 0
            while asked < 2:  # answer as Asterisk until the second question (NPS) is asked; then say nothing
                cmd = (await asyncio.wait_for(reader.readline(), 10)).decode().strip()
                if cmd.startswith("GET DATA"):
                    asked += 1
                    reply = "200 result=4" if asked == 1 else None
                else:
                    reply = asterisk_reply(cmd, {})
                if reply is not None:
                    writer.write(reply.encode() + b"\n")
            t0 = time.monotonic()
        # The daemon has exited cleanly (exit code 0 asserted by running()).
        assert 4.5 < time.monotonic() - t0 < 15
        assert await reader.read() == b""  # qmon closed the conversation
        writer.close()
    with sqlite3.connect(tmp_path / "qmon.db") as con:
        rows = con.execute("select linkedid, status, csat, nps, reason, source from survey_results").fetchall()
    assert rows == [("1795380955.0", "partial", 4, None, "qmon_shutdown", "agi")]
