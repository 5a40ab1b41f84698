"""The per-agent families written from kept lines (monitor/web/agenttext.py) are generate_latest's text after any
sequence of board facts between scrapes: states and pauses that move, change slot, end; members who join (blocks of
a few members: laid out again); a member never logged in."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.ingest import Ingest
from monitor.core.tracker import CallTracker, TrackerConfig
from monitor.web import agenttext
from monitor.web.metrics import QmonMetrics
from tests.test_agentcols import FACTS, _apply
from tests.test_exposition import _created


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(FACTS, st.floats(0, 40, allow_nan=False), st.booleans()), max_size=50),
       st.integers(1, 4))
def test_scrapes_after_random_facts_equal_generate_latest(facts: list[tuple[Any, float, bool]], rows: int) -> None:
    old = agenttext.ROWS
    agenttext.ROWS = rows
    try:
        with _created(False):
            m = QmonMetrics(queues=("q1",), clock=lambda: 1.8e9)
            ing = Ingest(CallTracker(TrackerConfig(pause_reasons=("lunch",), wrapup_s=(("q2", 15.0),))), [], "p")
            m.add_pbx("p", ing)
            board = ing.tracker.agents
            ts = 1.8e9 + 0.123456
            for fact, dt, scrape in facts:
                ts += dt
                if fact[0] == "hold":
                    board.hold(ts)
                elif fact[0] != "read":
                    _apply(board, fact, ts)
                if scrape or fact[0] == "read":
                    snap = m.snapshot()
                    assert m.render(snap) == m.expose_reference(snap), fact
    finally:
        agenttext.ROWS = old
