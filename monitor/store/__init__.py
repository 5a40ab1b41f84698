"""Storage of call records in SQL (SQLite by default, PostgreSQL in production): writer, journal, reports."""

from monitor.store.store import HashedRepeatIndex, Store

__all__ = ["HashedRepeatIndex", "Store"]
