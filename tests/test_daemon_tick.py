"""The daemon ticks its trackers: a call whose caller hung up is stored once the grace period is over, even when
no event follows (the wiring must call ``Ingest.tick(now)`` periodically)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.amiserver import AmiTestServer, transcript_messages
from tests.support.daemon import daemon_settings, running
from tests.support.helpers import until

pytestmark = pytest.mark.usefixtures("year_after_recordings")  # the wall clock is far from PBX time


async def test_last_call_is_stored_by_the_tick_without_another_event(tmp_path: Path) -> None:
    msgs = transcript_messages("answered_caller_hangup")
    # Cut right after the caller channel's Hangup: nothing more arrives from the PBX.
    last = max(i for i, m in enumerate(msgs) if m.startswith(b"Event: Hangup")
               and b"Channel: Local/5551002@lab-callers-00000000;2" in m)
    async with AmiTestServer(msgs[:last + 1]) as srv, running(daemon_settings(tmp_path, srv.port)) as d:
        await srv.wait_streamed(30)
        state = d.pbxs["default"].ingest.tracker.state
        await until(lambda: state.ending != {} or d.store.stats["calls_written"] >= 1, what="hang-up")
        await until(lambda: d.store.stats["calls_written"] >= 1, limit_s=10, what="stored by the tick")
        assert state.calls == {}
