"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import time_machine

from tests.support.store import DB, PG_HOST, PG_PORT, PG_USER, TABLES, pg

# The recordings were made in late 2026 (e.g. Linkedid 1795380955.0 is 2026-11-23). Clock-sensitive tests run
# with the wall clock a year later, so a wall-clock/PBX-time comparison fails here every time instead of starting
# to fail some day after the recording date.
YEAR_AFTER_RECORDINGS = 1795380955.0 + 366 * 86400


@pytest.fixture
def year_after_recordings() -> Iterator[float]:
    """The wall clock (``time.time``, ``datetime.now``) moved to a year after the recordings, still ticking."""
    with time_machine.travel(YEAR_AFTER_RECORDINGS, tick=True):
        yield YEAR_AFTER_RECORDINGS


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database, migrated with ``qmon db upgrade``, dropped at the end of the session."""
    name = f"qmon_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        pg(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # no server: the PostgreSQL half of the suite cannot run here
        pytest.skip(f"PostgreSQL unreachable at {PG_HOST}:{PG_PORT} as {PG_USER} ({exc}); start it (scripts/test.sh)")
    from monitor.cli import main

    url = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    assert main(["db", "upgrade", "--db", url], {}) == 0
    yield name
    pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DB]:
    """The same tests on SQLite (a WAL file) and on PostgreSQL (emptied before each test)."""
    if request.param == "sqlite":
        yield DB("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'qmon.db'}", tmp_path)
        return
    name = request.getfixturevalue("pg_database")
    pg(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE", name)
    yield DB("postgresql", f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}", tmp_path)
