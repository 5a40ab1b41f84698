"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import time_machine

# The recordings were made in late 2026 (e.g. Linkedid 1795380955.0 is 2026-11-23). Clock-sensitive tests run
# with the wall clock a year later, so a wall-clock/PBX-time comparison fails here every time instead of starting
# to fail some day after the recording date.
YEAR_AFTER_RECORDINGS = 1795380955.0 + 366 * 86400


@pytest.fixture
def year_after_recordings() -> Iterator[float]:
    """The wall clock (``time.time``, ``datetime.now``) moved to a year after the recordings, still ticking."""
    with time_machine.travel(YEAR_AFTER_RECORDINGS, tick=True):
        yield YEAR_AFTER_RECORDINGS
