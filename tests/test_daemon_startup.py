"""A part that cannot start: one clean error, and everything opened before it is closed again (no leaked files)."""

from __future__ import annotations

import dataclasses
import gc
import os
import socket
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.daemon import StartupError, run_daemon
from monitor.settings import HttpSettings, SurveySettings
from tests.support.amiserver import AmiTestServer
from tests.support.daemon import daemon_settings, running
from tests.support.helpers import free_port


def open_files_under(path: Path) -> list[str]:
    """Files under ``path`` this process holds open right now (Linux /proc)."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(path)):
            out.append(target)
    return out


@pytest.fixture
def taken_port() -> object:
    """A loopback port some other program listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


async def test_http_port_taken_closes_store_and_survey_state(tmp_path: Path, taken_port: int) -> None:
    base = daemon_settings(tmp_path, free_port())
    settings = dataclasses.replace(
        base, http=HttpSettings(bind="127.0.0.1", port=taken_port),
        survey=SurveySettings(port=0, state_path=str(tmp_path / "survey.db")))
    with pytest.raises(StartupError, match=f"cannot listen for HTTP on 127.0.0.1:{taken_port}"):
        await run_daemon(settings)
    # The store had created its database and the survey its state file before the bind failed: both closed.
    assert (tmp_path / "qmon.db").exists() and (tmp_path / "survey.db").exists()
    assert open_files_under(tmp_path) == []


async def test_agi_port_taken_closes_http_too(tmp_path: Path, taken_port: int) -> None:
    http_port = free_port()
    settings = dataclasses.replace(daemon_settings(tmp_path, free_port()),
                                   http=HttpSettings(bind="127.0.0.1", port=http_port),
                                   survey=SurveySettings(port=taken_port, state_path=str(tmp_path / "survey.db")))
    with pytest.raises(StartupError, match=f"cannot listen for FastAGI on .*:{taken_port}"):
        await run_daemon(settings)
    assert open_files_under(tmp_path) == []
    with socket.socket() as s:  # the HTTP listener opened before the AGI one failed is closed again
        s.bind(("127.0.0.1", http_port))


def test_qmon_run_says_so_in_one_line(tmp_path: Path, taken_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    env = {"QMON_AMI_SECRET": "s", "QMON_AMI_PORT": str(free_port()), "QMON_HTTP_PORT": str(taken_port),
           "QMON_HTTP_BIND": "127.0.0.1", "QMON_STORE_URL": f"sqlite+aiosqlite:///{tmp_path / 'q.db'}",
           "QMON_STORE_JOURNAL_PATH": str(tmp_path / "j.jsonl"), "QMON_SURVEY_ENABLED": "false"}
    assert main(["run"], env) == 2  # the pre-flight check names the setting before anything is opened
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"qmon run: http: cannot listen on 127.0.0.1:{taken_port}: address already in use (another qmon, "
                   "or another exporter?)"]


async def test_the_startup_heap_is_frozen_while_the_daemon_runs(tmp_path: Path) -> None:
    """Once started (survey server listening), what start-up made is out of the collector's generations, so full
    passes during a burst of surveys or a scrape walk only what came after; given back at shutdown."""
    gc.unfreeze()
    settings = dataclasses.replace(daemon_settings(tmp_path, 1), survey=SurveySettings(
        port=0, state_path=str(tmp_path / "survey.db")))
    async with AmiTestServer([]) as srv, running(dataclasses.replace(
            settings, ami=(dataclasses.replace(settings.ami[0], port=srv.port),))) as d:
        assert d.survey_port
        assert gc.get_freeze_count() > 1000
    assert gc.get_freeze_count() == 0
