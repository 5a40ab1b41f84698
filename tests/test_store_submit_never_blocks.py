"""Store.submit* must never do disk I/O on the AMI read path (CONTRIBUTING: never blocks)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from monitor.replay import replay_files
from monitor.settings import StoreSettings
from monitor.store import Store

FIXTURES = Path(__file__).parent / "fixtures"


async def test_submit_with_full_queue_does_no_fsync_on_the_read_path(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    records = replay_files(sorted(FIXTURES.glob("*.ami"))).records[:50]
    store = Store(StoreSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'q.db'}", queue_size=1,
                                journal_path=str(tmp_path / "j.jsonl")))
    fsyncs: list[int] = []
    real = os.fsync

    def counting_fsync(fd: int) -> None:
        fsyncs.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    t0 = time.perf_counter()
    for r in records:  # the writer is busy (e.g. a slow database): the queue is full
        store.submit(r)
    elapsed = time.perf_counter() - t0
    # Each submit past the bound opened, appended and fsynced the journal synchronously, in the AMI callback.
    assert fsyncs == [], f"{len(fsyncs)} fsync(s) in {elapsed * 1000:.1f} ms inside submit() on the read path"
