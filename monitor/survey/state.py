"""The survey's own small SQLite file: the opt-out list and "last surveyed at" per number.

Reads are served from memory (loaded once at open) so the conversation path never touches the disk;
writes go straight to SQLite (WAL, one tiny row) and callers run them off the event loop when it matters.
The daemon may instead inject the storage engineer's cooldown lookup (:class:`CooldownState`).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from monitor.core.repeat import normalize_number
from monitor.files import private_file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS optout (number TEXT PRIMARY KEY, added_ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS surveyed (number TEXT PRIMARY KEY, last_ts REAL NOT NULL);
"""


def _norm(number: str) -> str:
    n = normalize_number(number)
    if n is None:
        raise ValueError(f"not a phone number: {number!r}")
    return n


class SurveyState:
    """Opt-out list + cooldown memory in one SQLite file; implements CooldownState and OptOutList."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # Caller numbers: the file (and SQLite's -wal/-shm, which copy its mode) 0600, new directories 0700.
        private_file(self.path)
        # check_same_thread=False: writes may run in a worker thread; the lock serialises them.
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._optout = {r[0] for r in self._db.execute("SELECT number FROM optout")}
            self._last = dict(self._db.execute("SELECT number, last_ts FROM surveyed").fetchall())

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    # OptOutList
    def is_opted_out(self, number: str) -> bool:
        """True if ``number`` is on the opt-out list."""
        n = normalize_number(number)
        return n is not None and n in self._optout

    def add_optout(self, number: str, ts: float) -> bool:
        """Put a number on the list; False if it was already there."""
        n = _norm(number)
        with self._lock:
            cur = self._db.execute("INSERT OR IGNORE INTO optout(number, added_ts) VALUES (?, ?)", (n, ts))
        self._optout.add(n)
        return cur.rowcount == 1

    def remove_optout(self, number: str) -> bool:
        """Take a number off the list; False if it was not there."""
        n = _norm(number)
        with self._lock:
            cur = self._db.execute("DELETE FROM optout WHERE number = ?", (n,))
        self._optout.discard(n)
        return cur.rowcount == 1

    def optouts(self) -> list[tuple[str, float]]:
        """Every opted-out number with when it was added, oldest first."""
        with self._lock:
            return list(self._db.execute("SELECT number, added_ts FROM optout ORDER BY added_ts, number"))

    # CooldownState
    def last_surveyed(self, number: str) -> float | None:
        """When ``number`` was last surveyed (epoch s), from memory."""
        n = normalize_number(number)
        return self._last.get(n) if n is not None else None

    def mark_surveyed(self, number: str, ts: float) -> None:
        """Remember a survey of ``number`` (memory at once, then the file)."""
        n = normalize_number(number)
        if n is None:
            return
        self._last[n] = max(ts, self._last.get(n, ts))
        with self._lock:
            self._db.execute(
                "INSERT INTO surveyed(number, last_ts) VALUES (?, ?) "
                "ON CONFLICT(number) DO UPDATE SET last_ts = max(last_ts, excluded.last_ts)", (n, ts))
