"""Engines (SQLite in WAL mode, PostgreSQL via asyncpg), URL handling, Alembic upgrades, caller hashing."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Alembic logs its plugin set-up at INFO when imported; only the migrations themselves are worth a line.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
# aiosqlite logs every statement with its parameters (caller numbers, names) at DEBUG: never, even at debug level.
logging.getLogger("aiosqlite").setLevel(logging.INFO)

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from monitor.core.repeat import RepeatIndex
from monitor.core.text import clean_opt
from monitor.files import private_file

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}


def async_url(url: str) -> str:
    """``sqlite:///x.db`` / ``postgresql://...`` -> the asyncio driver URL (explicit drivers are kept)."""
    u = make_url(url)
    driver = _DRIVERS.get(u.drivername)
    if driver is not None:
        u = u.set(drivername=driver)
    return u.render_as_string(hide_password=False)


def masked(url: str) -> str:
    """The URL with its password masked, fit for logs."""
    from monitor.urls import mask_url  # also masks ?password= (asyncpg takes it), which SQLAlchemy does not

    return mask_url(make_url(url).render_as_string(hide_password=True))


def is_sqlite(url: str) -> bool:
    """Whether the URL points at SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, connect_timeout_s: float = 5.0, busy_timeout_s: float = 5.0,
                command_timeout_s: float | None = None, pool_size: int = 5, read_only: bool = False) -> AsyncEngine:
    """An async engine; SQLite files (created 0600, directories 0700) get WAL, foreign keys and a busy timeout.

    PostgreSQL: connecting fails after ``connect_timeout_s``, each statement after ``command_timeout_s``
    (default 30 s, for reports). SQL parameters never appear in exception messages (they hold caller numbers).
    ``read_only`` (reports): the SQLite file is neither created nor checked for its mode.
    """
    full = async_url(url)
    u = make_url(full)
    if u.get_backend_name() == "sqlite":
        db = u.database or ""
        if db and db != ":memory:" and not db.startswith("file:") and not read_only:
            # SQLite creates -wal and -shm with the database file's mode: 0600 here means 0600 there.
            private_file(Path(db).expanduser())
        engine = create_async_engine(full, connect_args={"timeout": busy_timeout_s}, hide_parameters=True)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            cur.close()

        return engine
    args: dict[str, Any] = {}
    if u.get_backend_name() == "postgresql":
        # asyncpg: a dead or silent server must fail fast so that the writer declares an outage quickly.
        args = {"timeout": connect_timeout_s,
                "command_timeout": command_timeout_s if command_timeout_s is not None else max(30.0, connect_timeout_s)}
    return create_async_engine(full, pool_pre_ping=True, pool_size=pool_size, max_overflow=2, connect_args=args,
                               hide_parameters=True)


def _config(conn: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def head_revision() -> str | None:
    """The newest migration shipped with this version."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at (None when never migrated)."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade_sync(conn: Connection, revision: str = "head") -> None:
    """Run the shipped Alembic migrations on a synchronous connection."""
    command.upgrade(_config(conn), revision)


def downgrade_sync(conn: Connection, revision: str) -> None:
    """Downgrade to ``revision`` (``base`` drops everything)."""
    command.downgrade(_config(conn), revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> str | None:
    """Upgrade the database to ``revision``; returns the revision it is at afterwards."""
    async with engine.begin() as conn:
        await conn.run_sync(upgrade_sync, revision)
        return await conn.run_sync(current_revision)


async def schema_revision(engine: AsyncEngine) -> str | None:
    """The database's current revision."""
    async with engine.connect() as conn:
        return await conn.run_sync(current_revision)


def cut(s: str | None, n: int) -> str | None:
    """``s`` without control characters (:func:`monitor.core.text.clean_text`), shortened to ``n`` characters."""
    # NUL makes PostgreSQL refuse the row; over-long strings the whole batch. The tail is never what matters.
    s = clean_opt(s)
    return s if s is None or len(s) <= n else s[:n]


def dialect_insert(dialect: str, model: type[Any]) -> Any:
    """An INSERT with ``on_conflict_do_nothing`` for the dialect (sqlite or postgresql)."""
    if dialect == "postgresql":
        return pg_insert(model)
    if dialect == "sqlite":
        return sqlite_insert(model)
    raise ValueError(f"unsupported database dialect {dialect!r} (use sqlite or postgresql)")


def caller_hasher(salt: str) -> Callable[[str | None], str | None]:
    """A function number -> salted HMAC-SHA256 hex digest (None stays None)."""
    key = salt.encode()

    def h(number: str | None) -> str | None:
        if number is None:
            return None
        return hmac.new(key, number.encode(), hashlib.sha256).hexdigest()

    return h


class HashedRepeatIndex(RepeatIndex):
    """A repeat index keyed by the HMAC of the number, so it can be warmed from hashed stored callers.

    The tracker calls :meth:`check_and_add` with plain numbers (hashed here); :meth:`remember`, used by
    :meth:`Store.load_repeat_index`, takes the stored (already hashed) values as they are.
    """

    def __init__(self, hasher: Callable[[str | None], str | None], windows: tuple[str, ...] = ("24h",),
                 max_entries: int = 500_000) -> None:
        super().__init__(windows, max_entries)
        self._hash = hasher

    def check_and_add(self, number: str | None, ts: float, linkedid: str = "") -> tuple[str, ...]:
        """Windows in which the (hashed) number called before ``ts``; then remember this call."""
        return super().check_and_add(self._hash(number), ts, linkedid)
