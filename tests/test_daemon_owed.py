"""``qmon run`` keeps owed callbacks across a restart: process 1 sees repeat_caller's abandoned call and stops;
process 2 reloads it from SQLite at start and closes it when the caller's next call is answered."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from monitor.ami.wire import WireParser
from tests.support.amiserver import AmiTestServer, transcript_messages
from tests.support.daemon import daemon_settings, running
from tests.support.helpers import until

pytestmark = pytest.mark.usefixtures("year_after_recordings")  # the wall clock is far from PBX time


def _split() -> tuple[list[bytes], list[bytes]]:
    """repeat_caller's messages before and from the third call's QueueCallerJoin's Newexten Queue()."""
    msgs = transcript_messages("repeat_caller")
    parser = WireParser(expect_banner=False)
    heads = [next(iter(parser.feed(m)), {}) for m in msgs]
    joins = [i for i, h in enumerate(heads) if h.get("Event") == "QueueCallerJoin"]
    cut = max(i for i, h in enumerate(heads[:joins[2]]) if h.get("Event") == "Hangup") + 1
    return msgs[:cut], msgs[cut:]


async def test_owed_callback_reloaded_after_restart_and_closed(tmp_path: Path) -> None:
    first, rest = _split()
    async with AmiTestServer(first) as srv:
        s1 = daemon_settings(tmp_path, srv.port)
        async with running(s1) as d:
            owed = d.pbxs["default"].ingest.tracker.owed
            await until(lambda: len(owed.open()) == 1, what="an owed callback")
            [row] = owed.open()
            assert (row.caller, row.outcome) == ("5551010", "abandoned_short")
    with sqlite3.connect(tmp_path / "qmon.db") as conn:
        assert conn.execute("SELECT caller, closed_ts FROM owed_calls").fetchall() == [("5551010", None)]
    async with AmiTestServer(rest) as srv:
        s2 = daemon_settings(tmp_path, srv.port)
        async with running(s2) as d:
            owed = d.pbxs["default"].ingest.tracker.owed
            # Only a reloaded owed call can be closed: process 2 never saw the abandoned call itself.
            await until(lambda: owed.open() == [], what="the callback closed by the answered call")
    with sqlite3.connect(tmp_path / "qmon.db") as conn:
        assert conn.execute("SELECT caller, closed_by, agent FROM owed_calls").fetchall() == [
            ("5551010", "inbound", "agent1")]
