"""The survey's own small SQLite file: the opt-out list and "last surveyed at" per number.

Reads are served from memory (loaded once at open) so the conversation path never touches the disk;
writes go straight to SQLite (WAL, one tiny row) and callers run them off the event loop when it matters.
The daemon may instead inject the storage engineer's cooldown lookup (:class:`CooldownState`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from monitor.core.repeat import MAX_NUMBER_DIGITS, NumberNormalizer
from monitor.files import private_file

_PLAIN = NumberNormalizer()  # no home region: only + numbers become E.164

_SCHEMA = """
CREATE TABLE IF NOT EXISTS optout (number TEXT PRIMARY KEY, added_ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS surveyed (number TEXT PRIMARY KEY, last_ts REAL NOT NULL);
"""


def optout_key(number: str, normalize: Callable[[str | None], str | None] = _PLAIN) -> str:
    """A number a user typed as the list keys it; ValueError if it is not a phone number (or over 20 digits)."""
    n = normalize(number)
    if n is None or len(n.lstrip("+")) > MAX_NUMBER_DIGITS:
        shown = number if len(number) <= 40 else number[:40] + "..."
        raise ValueError(f"not a phone number: {shown!r}" + (f" (over {MAX_NUMBER_DIGITS} digits)" if n else ""))
    return n


class SurveyState:
    """Opt-out list + cooldown memory in one SQLite file; implements CooldownState and OptOutList.

    ``normalize`` must be the tracker's (:class:`~monitor.core.repeat.NumberNormalizer` of ``[tracker]``): the
    daemon asks about ``record.caller`` as the tracker stored it (E.164 with a ``home_region``). Rows written
    under another normalisation (older qmon, another region) are rewritten to this one at open.
    """

    def __init__(self, path: str | Path, normalize: Callable[[str | None], str | None] = _PLAIN) -> None:
        self.path = Path(path)
        self._normalize = normalize
        # Caller numbers: the file (and SQLite's -wal/-shm, which copy its mode) 0600, new directories 0700.
        private_file(self.path)
        # check_same_thread=False: writes may run in a worker thread; the lock serialises them.
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._migrate()
            self._optout = {r[0] for r in self._db.execute("SELECT number FROM optout")}
            self._last = dict(self._db.execute("SELECT number, last_ts FROM surveyed").fetchall())

    def _migrate(self) -> None:
        """Rewrite stored numbers to this normalisation (a key that no longer normalises is left as it is)."""
        moves = [(t, old, new) for t in ("optout", "surveyed")
                 for (old,) in self._db.execute(f"SELECT number FROM {t}")
                 if (new := self._normalize(old)) is not None and new != old]
        if not moves:
            return
        self._db.execute("BEGIN IMMEDIATE")
        for table, old, new in moves:
            if table == "optout":
                self._db.execute("INSERT OR IGNORE INTO optout(number, added_ts) SELECT ?, added_ts FROM optout "
                                 "WHERE number = ?", (new, old))
            else:
                self._db.execute("INSERT INTO surveyed(number, last_ts) SELECT ?, last_ts FROM surveyed "
                                 "WHERE number = ? ON CONFLICT(number) DO UPDATE SET "
                                 "last_ts = max(last_ts, excluded.last_ts)",
                                 (new, old))
            self._db.execute(f"DELETE FROM {table} WHERE number = ?", (old,))
        self._db.execute("COMMIT")

    def _norm(self, number: str) -> str:
        return optout_key(number, self._normalize)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    # OptOutList
    def is_opted_out(self, number: str) -> bool:
        """True if ``number`` is on the opt-out list."""
        n = self._normalize(number)
        return n is not None and n in self._optout

    def add_optout(self, number: str, ts: float) -> bool:
        """Put a number on the list; False if it was already there."""
        n = self._norm(number)
        with self._lock:
            cur = self._db.execute("INSERT OR IGNORE INTO optout(number, added_ts) VALUES (?, ?)", (n, ts))
        self._optout.add(n)
        return cur.rowcount == 1

    def remove_optout(self, number: str) -> bool:
        """Take a number off the list; False if it was not there."""
        n = self._norm(number)
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
        n = self._normalize(number)
        return self._last.get(n) if n is not None else None

    def mark_surveyed(self, number: str, ts: float) -> None:
        """Remember a survey of ``number`` (memory at once, then the file)."""
        n = self._normalize(number)
        if n is None:
            return
        self._last[n] = max(ts, self._last.get(n, ts))
        with self._lock:
            self._db.execute(
                "INSERT INTO surveyed(number, last_ts) VALUES (?, ?) "
                "ON CONFLICT(number) DO UPDATE SET last_ts = max(last_ts, excluded.last_ts)", (n, ts))
