"""The daemon under test: settings for a test run, the daemon in-process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from monitor.daemon import Daemon, run_daemon
from monitor.settings import AmiSettings, HttpSettings, Settings, StoreSettings, SurveySettings, TrackerSettings
from tests.support.helpers import FIXTURES as FIXTURES

SCENARIOS = ("concurrent", "repeat_caller", "overflow")


def daemon_settings(tmp: Path, ami_port: int, token: str = "", queues: tuple[str, ...] = ("support", "sales"),
                  ) -> Settings:
    """Settings of a daemon under test: SQLite + journal in ``tmp``, HTTP on a free port, no survey server."""
    return Settings(
        ami=(AmiSettings(port=ami_port, secret="secret", backoff_initial_s=0.1, backoff_max_s=0.3,
                         connect_timeout_s=2.0, resync_timeout_s=2.0),),
        tracker=TrackerSettings(queues=queues), http=HttpSettings(port=0, token=token),
        store=StoreSettings(url=f"sqlite+aiosqlite:///{tmp / 'qmon.db'}", journal_path=str(tmp / "journal.jsonl"),
                            flush_interval_s=0.1),
        survey=SurveySettings(enabled=False),
    )


@asynccontextmanager
async def running(settings: Settings, clock: Callable[[], float] = time.time) -> AsyncIterator[Daemon]:
    """The daemon in this event loop until the block ends (then a clean shutdown, exit code 0 asserted);
    ``clock`` is its clock (epoch s)."""
    stop = asyncio.Event()
    ready: asyncio.Future[Daemon] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_daemon(settings, stop=stop, ready_cb=ready.set_result, clock=clock),
                               name="daemon-under-test")
    done, _ = await asyncio.wait({task, ready}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
        raise AssertionError("daemon exited before ready")
    try:
        yield ready.result()
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0
