"""The store's loss counters are exported from the start (at 0) and follow Store.stats."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from monitor.web.metrics import QmonMetrics


class _Stats:
    def __init__(self, stats: Mapping[str, Any]) -> None:
        self.stats = stats


def _values(store: _Stats | None) -> dict[str, float]:
    text = generate_latest(QmonMetrics(CollectorRegistry(), store=store).registry).decode()
    names = ("qmon_store_rejected_total", "qmon_store_lost_total", "qmon_store_journal_replayed_total")
    return {ln.split()[0]: float(ln.split()[1]) for ln in text.splitlines() if ln.startswith(names)}


def test_loss_counters_present_at_zero_and_follow_stats() -> None:
    """qmon_store_rejected / qmon_store_lost (+ journal replays) at 0 before the store runs, then its numbers."""
    zero = {"qmon_store_rejected_total": 0.0, "qmon_store_lost_total": 0.0, "qmon_store_journal_replayed_total": 0.0}
    assert _values(None) == zero
    assert _values(_Stats({})) == zero
    assert _values(_Stats({"rejected": 2, "lost": 1, "journal_replayed": 7})) == {
        "qmon_store_rejected_total": 2.0, "qmon_store_lost_total": 1.0, "qmon_store_journal_replayed_total": 7.0}
