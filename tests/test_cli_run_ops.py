"""What an operator sees from ``qmon run``: "ready" only after the AMI login, a periodic status line, no Alembic
chatter, the exporter's standard series; and ``qmon report --pbx``."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from pathlib import Path

import aiohttp
import pytest

from monitor.cli import main
from monitor.cli.run import serve, setup_logging
from tests.support.amiserver import AmiTestServer, transcript_messages
from tests.support.daemon import daemon_settings
from tests.support.helpers import free_port, until


async def test_ready_only_after_the_login_then_a_status_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """While AMI is unreachable the status line says so and nothing claims "ready"; the login then brings both."""
    caplog.set_level(logging.INFO)
    setup_logging("INFO")
    port = free_port()
    settings = dataclasses.replace(daemon_settings(tmp_path, port), status_interval_s=0.3)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))

    def lines(word: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if word in r.getMessage()]

    try:
        await until(lambda: any("default=down" in m for m in lines("status: ")), what="a status line with AMI down")
        assert lines("qmon ready") == []
        srv = await AmiTestServer(transcript_messages("abandoned")).start(port)
        try:
            await until(lambda: lines("qmon ready"), what="ready after login")
            await until(lambda: any("default=up" in m for m in lines("status: ")), what="a status line, AMI up")
        finally:
            stop.set()
            assert await asyncio.wait_for(task, 30) == 0
            await srv.close()
    finally:
        stop.set()
    up = next(m for m in lines("status: ") if "default=up" in m)
    assert re.fullmatch(r"status: ami default=up [\d.]+ ev/s \| open calls \d+ \| waiting \d+ \| "
                        r"store queue \d+ journal \d+ db up", up), up
    messages = [r.getMessage() for r in caplog.records]
    assert messages.index(lines("qmon ready")[0]) > messages.index(lines("logged in")[0])
    assert re.search(r", wallboard http://127\.0\.0\.1:\d+/$", lines("qmon ready")[0])  # the TV's address
    assert not [r for r in caplog.records if r.name.startswith("alembic") and r.levelno < logging.WARNING]


async def test_process_collectors_and_build_info(tmp_path: Path) -> None:
    from monitor import __version__

    async with AmiTestServer() as srv:
        settings = dataclasses.replace(daemon_settings(tmp_path, srv.port), status_interval_s=0)
        stop = asyncio.Event()
        ports: list[int] = []
        task = asyncio.create_task(serve(settings, stop, lambda p: str(ports.append(p))))
        try:
            await until(lambda: ports, what="the daemon's HTTP port")
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{ports[0]}/metrics") as r:
                text = await r.text()
        finally:
            stop.set()
            assert await asyncio.wait_for(task, 30) == 0
    for series in ("process_resident_memory_bytes", "process_start_time_seconds", "python_info",
                   "python_gc_collections_total", 'qmon_build_info{python_version="', f'version="{__version__}"'):
        assert series in text, series


def test_report_by_pbx(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Calls of two PBXs in one database: --pbx keeps one apart from the other."""
    fixtures = Path(__file__).parent / "fixtures"
    db = str(tmp_path / "r.db")
    assert main(["import-queue-log", str(fixtures / "abandoned.queue_log"), "--pbx", "east", "--db", db], {}) == 0
    assert main(["import-queue-log", str(fixtures / "blind_transfer.queue_log"), "--pbx", "west", "--db", db],
                {}) == 0
    capsys.readouterr()
    calls = {}
    for pbx in ("east", "west", None):
        argv = ["report", "--from", "2020-01-01", "--to", "2030-01-01", "--format", "json", "--db", db]
        assert main([*argv, *(["--pbx", pbx] if pbx else [])], {}) == 0
        rep = json.loads(capsys.readouterr().out)
        assert rep["database"] == f"sqlite+aiosqlite:///{db}" and rep["pbx"] == pbx
        calls[pbx] = (rep["report"]["calls"], sorted(rep["queues"]))
    assert calls["east"][0] == calls["west"][0] == 1 and calls[None][0] == 2
    assert main(["report", "--from", "2020-01-01", "--to", "2030-01-01", "--pbx", "nowhere", "--db", db], {}) == 0
    assert "calls 0" in capsys.readouterr().out


def test_web_listen_address_is_an_alias(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--web.listen-address", "[::1]:9100"], {"QMON_AMI_SECRET": "x"}) == 0
    out = capsys.readouterr().out
    assert 'bind = "::1"\nport = 9100\n' in out


async def test_demo_on_a_public_address_with_a_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With QMON_HTTP_TOKEN the demo may listen on every address, and its API then wants the token."""
    port = free_port()
    argv = ["demo", "--duration", "4", "--http-port", str(port), "--http-bind", "0.0.0.0",
            "--db", str(tmp_path / "d.db")]
    assert main(argv, {}) == 2
    assert "no token is set" in capsys.readouterr().err
    demo = asyncio.create_task(asyncio.to_thread(main, argv, {"QMON_HTTP_TOKEN": "t0ken"}))
    url = f"http://127.0.0.1:{port}/api/v1/queues"
    statuses: list[int] = []
    async with aiohttp.ClientSession() as http:
        async def get(headers: dict[str, str]) -> int:
            try:
                async with http.get(url, headers=headers) as r:
                    return r.status
            except aiohttp.ClientConnectionError:
                return 0

        for _ in range(60):  # until the demo listens (bounded: 3 s)
            if demo.done() or await get({}):
                break
            await asyncio.sleep(0.05)
        statuses += [await get({}), await get({"Authorization": "Bearer t0ken"})]
    assert await demo == 0
    assert statuses == [401, 200]


def test_replay_counts_unreadable_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A capture with some broken lines is replayed, and the skip is said (never silent)."""
    good = (Path(__file__).parent / "fixtures" / "abandoned.jsonl").read_text()
    f = tmp_path / "half.jsonl"
    f.write_text(good + "not json\n{\n")
    assert main(["replay", str(f)], {}) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["calls"] == 1
    assert f"{f}: 2 unreadable line(s) skipped" in cap.err
