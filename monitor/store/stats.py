"""The store's loss accounting for the metrics module (issue 14): plain numbers, no prometheus_client here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# (key in Store.stats, metric family name without _total, help)
COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("rejected", "qmon_store_rejected",
     "Records the database refused as they were; stored with free-text fields blanked (original in .rejected)"),
    ("lost", "qmon_store_lost",
     "Records neither in the database nor in the journal (kept in .rejected when there is something to keep)"),
    ("journal_replayed", "qmon_store_journal_replayed", "Records written to the database from the journal file"),
)


def loss_counters(stats: Mapping[str, Any] | None) -> list[tuple[str, str, float]]:
    """``(family name, help, value)`` for each loss counter; every one present (0) even before the store runs."""
    s = stats or {}
    return [(name, doc, float(s.get(key, 0))) for key, name, doc in COUNTERS]
