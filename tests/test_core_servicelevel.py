"""Every service-level definition, ASA and abandonment rates of the report equal the values derived from
Asterisk's own queue_log, on real recordings, at several thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.core.servicelevel import (
    DEFAULT_SL,
    SL_DEFINITIONS,
    SlCounts,
    abandon_rates,
    service_levels,
    sl_definition_map,
)
from monitor.replay import replay_files
from tests.support.factcheck import FIXTURES
from tests.support.queue_log_agents import sl_counts_from_queue_log

AGENTS = FIXTURES / "agents"
RECORDINGS = [
    AGENTS / "pause_reasons", AGENTS / "ast20" / "pause_reasons", FIXTURES / "concurrent",
    AGENTS / "ast20" / "concurrent", FIXTURES / "member_changes", FIXTURES / "ring_no_answer",
    FIXTURES / "abandoned", FIXTURES / "abandoned_short", FIXTURES / "repeat_caller",
]


@pytest.mark.parametrize("base", RECORDINGS, ids=lambda p: f"{p.parent.name}/{p.name}")
@pytest.mark.parametrize("threshold", [2.0, 5.0, 20.0])
def test_service_levels_equal_queue_log(base: Path, threshold: float) -> None:
    rep = replay_files([base.with_suffix(".ami")]).report(threshold)
    for queue, counts in sl_counts_from_queue_log(base.with_suffix(".queue_log"), threshold).items():
        q = rep["queues"][queue]
        assert q["service_levels"] == service_levels(counts)
        assert (q["abandon_rate"], q["abandon_rate_no_short"]) == abandon_rates(counts)
        assert (q["answered_within_sl"], q["abandoned_within_sl"]) == (counts.answered_within,
                                                                      counts.abandoned_within)
        assert q["service_level"] == service_levels(counts)["offered_no_short"]
        assert q["asa_s"] == q["wait_answered_s"]["mean"]


def test_concurrent_values_by_hand() -> None:
    """concurrent: 6 entered, CONNECT holds 2,2,7,8, ABANDON waits 4 (short) and 9; T = 5 s."""
    q = replay_files([FIXTURES / "concurrent.ami"]).report(5.0)["queues"]["support"]
    assert q["service_levels"] == {"answered": 2 / 4, "answered_abandoned": (2 + 1) / (4 + 2), "offered": 2 / 6,
                                   "offered_no_short": 2 / 5}
    assert (q["abandon_rate"], q["abandon_rate_no_short"]) == (2 / 6, 1 / 5)
    assert q["asa_s"] == pytest.approx((2 + 2 + 7 + 8) / 4, abs=0.01)


def test_definitions_and_choice() -> None:
    assert service_levels(SlCounts(0, 0, 0, 0, 0, 0)) == dict.fromkeys(SL_DEFINITIONS)
    chosen = sl_definition_map(DEFAULT_SL, ("sales=answered_abandoned",))
    assert chosen == {"": "offered_no_short", "sales": "answered_abandoned"}
    with pytest.raises(ValueError, match="queue_sl_definition: sales='sl9' is not a service-level definition"):
        sl_definition_map(DEFAULT_SL, ("sales=sl9",))
    with pytest.raises(ValueError, match="not queue=value"):
        sl_definition_map(DEFAULT_SL, ("sales",))
