"""The tracker never mixes the daemon's clock with PBX time: events without a Timestamp (resync answers,
``timestampevents = no``) are placed on the PBX clock through the offset learnt from the last sane Timestamp."""

from __future__ import annotations

from monitor.core.normalize import Skip, normalize
from monitor.core.tracker import CallTracker
from tests.support.builders import CallBuilder

PBX_T0 = 1_795_380_000.0  # the PBX's clock (the recordings' era)
DAEMON_T0 = PBX_T0 + 400 * 86_400  # the daemon's clock: more than a year ahead of the PBX


def _feed(tr: CallTracker, headers: dict[str, str], now: float) -> None:
    e = normalize(headers)
    assert e is not None and not isinstance(e, Skip)
    tr.feed(e, now)


def test_events_without_timestamp_and_resync_stay_on_the_pbx_clock() -> None:
    tr = CallTracker()
    waiting = CallBuilder("9.1")
    _feed(tr, waiting.queue_app(PBX_T0, "q"), DAEMON_T0)
    _feed(tr, waiting.join(PBX_T0, "q"), DAEMON_T0)
    assert tr.pbx_time(DAEMON_T0 + 30) == PBX_T0 + 30
    tr.connection_lost(DAEMON_T0 + 30)
    tr.resync_begin()
    gap = CallBuilder("10.1")  # joined during the gap: known only from QueueStatus, which has no Timestamp
    _feed(tr, {"Event": "QueueEntry", "Queue": "q", "Position": "2", "Wait": "12", **gap.snap()}, DAEMON_T0 + 60)
    _feed(tr, {"Event": "CoreShowChannel", **waiting.snap(Application="Queue")}, DAEMON_T0 + 60)
    _feed(tr, {"Event": "CoreShowChannel", **gap.snap(Application="Queue")}, DAEMON_T0 + 60)  # alive: adopted
    tr.resync_end(DAEMON_T0 + 60)
    assert tr.now == PBX_T0 + 60
    assert sorted(tr.waiting()["q"]) == [PBX_T0, PBX_T0 + 48]  # adopted: 12 s of wait on the PBX clock


def test_a_pbx_whose_clock_really_moved_is_followed_after_a_while() -> None:
    tr = CallTracker()
    c = CallBuilder("9.1")
    _feed(tr, c.queue_app(PBX_T0, "q"), DAEMON_T0)
    jumped = PBX_T0 + 3 * 86_400
    for i in range(150):  # one absurd Timestamp is ignored; a PBX that keeps sending them is believed
        _feed(tr, c.ev("Newexten", jumped + i, Application="Wait", AppData="1"), DAEMON_T0 + i)
    assert tr.now == jumped + 149
