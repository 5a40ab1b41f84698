"""Files holding caller numbers are 0600 and directories qmon creates 0700, under umask 022 (issue 14, item 5)."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from monitor.settings import StoreSettings
from monitor.store import Store
from monitor.survey.state import SurveyState
from tests.faults.child_store import TEMPLATE


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask (files 0644, directories 0755 unless qmon asks otherwise)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(p: Path) -> int:
    """Permission bits of ``p``."""
    return stat.S_IMODE(p.stat().st_mode)


async def test_store_files_private_under_umask_022(tmp_path: Path, umask_022: None) -> None:
    """SQLite database, -wal, -shm, journal, .rejected: 0600; the directories created for them: 0700."""
    db = tmp_path / "data" / "db" / "qmon.db"
    journal = tmp_path / "spool" / "qmon" / "journal.jsonl"
    settings = StoreSettings(url=f"sqlite+aiosqlite:///{db}", journal_path=str(journal), flush_interval_s=0.02)
    store = Store(settings)
    await store.start()
    task = asyncio.create_task(store.run())
    store.submit(replace(TEMPLATE, linkedid="m-1", call_id="m-1.1"))
    assert await store.drain(5) is True
    await task
    files = [db, db.with_name("qmon.db-wal"), db.with_name("qmon.db-shm"), journal]
    assert all(f.exists() for f in files)
    modes = {f.name: oct(mode(f)) for f in files}
    await store.close()
    # A torn, unparseable line in the journal ends up in .rejected, which qmon creates.
    with journal.open("a") as f:
        f.write("{not json\n")
    again = Store(settings)
    await again.start()
    task = asyncio.create_task(again.run())
    assert await again.drain(5) is True
    await task
    await again.close()
    rejected = journal.with_name("journal.jsonl.rejected")
    modes[rejected.name] = oct(mode(rejected))
    assert modes == {n: "0o600" for n in modes}, modes
    dirs = {d.relative_to(tmp_path).as_posix(): oct(mode(d)) for d in (db.parent, db.parent.parent, journal.parent,
                                                                        journal.parent.parent)}
    assert dirs == {n: "0o700" for n in dirs}, dirs


def test_survey_state_private_under_umask_022(tmp_path: Path, umask_022: None) -> None:
    """The survey state database (opt-outs, who was surveyed when) and its -wal/-shm: 0600, new directories 0700."""
    path = tmp_path / "survey" / "state.db"
    state = SurveyState(path)
    state.add_optout("+15550123", 1795381000.0)
    files = [path, path.with_name("state.db-wal"), path.with_name("state.db-shm")]
    modes = {f.name: oct(mode(f)) for f in files}
    state.close()
    assert modes == {n: "0o600" for n in modes}, modes
    assert oct(mode(path.parent)) == "0o700"


async def test_existing_group_readable_file_is_reported(tmp_path: Path, umask_022: None,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """A journal left 0644 by an older version is not silently trusted: one warning naming the file."""
    path = tmp_path / "old.jsonl"
    path.write_text("")
    os.chmod(path, 0o644)
    store = Store(StoreSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'q.db'}", journal_path=str(path)))
    await store.start()
    await store.close()
    assert any("readable by group/others" in r.getMessage() and "old.jsonl" in r.getMessage()
               for r in caplog.records)


async def test_second_process_on_the_same_journal_is_refused(tmp_path: Path) -> None:
    """Two daemons on one journal would corrupt it: the second start fails with a message naming the file;
    tools that only read (``qmon report``) do not touch it."""
    from monitor.store.journal import JournalBusy

    settings = StoreSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'q.db'}", journal_path=str(tmp_path / "j.jsonl"))
    first = Store(settings)
    await first.start()
    second = Store(settings)
    with pytest.raises(JournalBusy, match=r"j\.jsonl"):
        await second.start()
    await second.close()
    reader = Store(settings)
    await reader.start(journal=False)
    assert await reader.writable() == (True, "ok")
    await reader.close()
    await first.close()
