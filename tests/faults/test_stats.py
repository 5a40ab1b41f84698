"""The loss counters the metrics export exist from the start and follow Store.stats."""

from monitor.store.stats import loss_counters


def test_loss_counters_present_at_zero_and_follow_stats() -> None:
    """qmon_store_rejected / qmon_store_lost (+ journal replays) at 0 before the store runs, then its numbers."""
    assert [(n, v) for n, _, v in loss_counters(None)] == [
        ("qmon_store_rejected", 0.0), ("qmon_store_lost", 0.0), ("qmon_store_journal_replayed", 0.0)]
    got = {n: v for n, _, v in loss_counters({"rejected": 2, "lost": 1, "journal_replayed": 7})}
    assert got == {"qmon_store_rejected": 2.0, "qmon_store_lost": 1.0, "qmon_store_journal_replayed": 7.0}
