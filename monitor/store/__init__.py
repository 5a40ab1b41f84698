"""Storage of call records in SQL (SQLite by default, PostgreSQL in production): writer, journal, reports."""

from monitor.store.engine import HashedRepeatIndex
from monitor.store.store import Store

__all__ = ["HashedRepeatIndex", "Store"]
