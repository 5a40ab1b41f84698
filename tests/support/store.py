"""Storage test helpers: the database under test (SQLite file or PostgreSQL), real outages.

The ``db`` and ``pg_database`` fixtures are in ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.settings import StoreSettings
from tests.support.helpers import free_port

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
FIXTURES = Path(__file__).parent.parent / "fixtures"
TABLES = "ring_no_answers, transfers, surveys, survey_results, call_segments, calls, agent_events, owed_calls"


def pg(sql: str, database: str = "postgres") -> None:
    import asyncpg  # type: ignore[import-untyped]

    async def go() -> None:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=database, timeout=3)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


@dataclass
class DB:
    """One empty, migrated database and a settings factory pointing at it."""

    engine: str
    url: str
    tmp: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def settings(self, **kw: Any) -> StoreSettings:
        """Store settings for this database with test-friendly timings."""
        base: dict[str, Any] = dict(url=self.url, journal_path=str(self.tmp / "journal.jsonl"), flush_interval_s=0.02,
                                    retry_max_s=0.2, connect_timeout_s=1.0, sqlite_busy_timeout_s=0.1,
                                    drain_timeout_s=5.0)
        return StoreSettings(**{**base, **kw})

    def url_with_port(self, port: int) -> str:
        """The same database through another TCP port (PostgreSQL only)."""
        return self.url.replace(f":{PG_PORT}/", f":{port}/")


class Outage:
    """A real database outage: SQLite locked by another writer, PostgreSQL behind a TCP proxy that dies."""

    def __init__(self, db: DB) -> None:
        self.db = db
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._lock: sqlite3.Connection | None = None

    @property
    def url(self) -> str:
        """The URL the store must use for the outage to hit it."""
        return self.db.url if self.db.engine == "sqlite" else self.db.url_with_port(self.port)

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        w.close()

    async def _client(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            sr, sw = await asyncio.open_connection(PG_HOST, PG_PORT)
        except OSError:
            cw.close()
            return
        self._writers |= {cw, sw}
        await asyncio.gather(self._pipe(cr, sw), self._pipe(sr, cw))

    async def up(self) -> None:
        """The database is (back) up."""
        if self.db.engine == "sqlite":
            if self._lock is not None:
                self._lock.execute("ROLLBACK")
                self._lock.close()
                self._lock = None
        elif self._server is None:
            self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def down(self) -> None:
        """The database goes away: SQLite writes fail (locked), PostgreSQL connections are cut and refused."""
        if self.db.engine == "sqlite":
            path = self.db.url.split("///", 1)[1]
            self._lock = sqlite3.connect(path, isolation_level=None, timeout=5)
            self._lock.execute("BEGIN EXCLUSIVE")
        elif self._server is not None:
            self._server.close()
            for w in self._writers:
                w.transport.abort()
            self._writers.clear()
            await self._server.wait_closed()
            self._server = None


@contextlib.asynccontextmanager
async def outage_control(db: DB) -> AsyncIterator[Outage]:
    """An :class:`Outage` that starts up and is always brought back up at the end."""
    o = Outage(db)
    await o.up()
    try:
        yield o
    finally:
        await o.up()
        if o._server is not None:
            o._server.close()
            for w in o._writers:
                w.transport.abort()
