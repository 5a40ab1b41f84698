"""Hostile input for the fast /metrics writer: names with quotes, backslashes, newlines and unicode, members
leaving and rejoining, pause reasons outside the configured ones, a PBX without members, state changing between
scrapes, scrapes overlapping each other on the event loop while AMI events arrive. Every scrape must be byte for
byte what generate_latest writes for the same state."""

from __future__ import annotations

import asyncio
import gc

from prometheus_client import CollectorRegistry

from monitor.ami.wire import WireParser
from monitor.core.ingest import Ingest
from monitor.core.tracker import CallTracker, TrackerConfig
from monitor.web.metrics import QmonMetrics

ODD = ['q"uote', "back\\slash", "new\nline", "ünï€😀", "plain", 'a\\"b', "\\n"]


def _msg(**kv: str) -> bytes:
    return b"".join(f"{k}: {v}\r\n".encode() for k, v in kv.items()) + b"\r\n"


def _added(q: str, a: str, paused: int = 0, reason: str = "", status: int = 1) -> bytes:
    return _msg(Event="QueueMemberAdded", Queue=q, MemberName=a, Interface=f"PJSIP/{a}", StateInterface=f"PJSIP/{a}",
                Membership="dynamic", Penalty="0", CallsTaken="0", LastCall="0", LastPause="0", InCall="0",
                Status=str(status), Paused=str(paused), PausedReason=reason)


def _removed(q: str, a: str) -> bytes:
    return _msg(Event="QueueMemberRemoved", Queue=q, MemberName=a, Interface=f"PJSIP/{a}")


def _pause(q: str, a: str, paused: int, reason: str, ts: float) -> bytes:
    return _msg(Event="QueueMemberPause", Timestamp=f"{ts:.6f}", Queue=q, MemberName=a, Interface=f"PJSIP/{a}",
                StateInterface=f"PJSIP/{a}", Membership="dynamic", Penalty="0", CallsTaken="0", LastCall="0",
                LastPause="0", InCall="0", Status="1", Paused=str(paused), PausedReason=reason, Reason=reason)


def _status(q: str, a: str, status: int, ts: float) -> bytes:
    return _msg(Event="QueueMemberStatus", Timestamp=f"{ts:.6f}", Queue=q, MemberName=a, Interface=f"PJSIP/{a}",
                StateInterface=f"PJSIP/{a}", Membership="dynamic", Penalty="0", CallsTaken="0", LastCall="0",
                LastPause="0", InCall=str(int(status == 2)), Status=str(status), Paused="0", PausedReason="")


def _feed(ing: Ingest, data: bytes) -> None:
    for h in WireParser(expect_banner=False).feed(data):
        ing.feed(h, 1.8e9)


def _setup() -> tuple[QmonMetrics, Ingest, Ingest]:
    m = QmonMetrics(CollectorRegistry(auto_describe=True), queues=(ODD[0],), clock=lambda: 1.8e9)
    odd = Ingest(CallTracker(TrackerConfig(pause_reasons=("lunch", 'k"x'))), [m.sink('p"b\\x\n')], 'p"b\\x\n')
    empty = Ingest(CallTracker(TrackerConfig()), [m.sink("empty")], "empty")
    m.add_pbx('p"b\\x\n', odd)
    m.add_pbx("empty", empty)
    _feed(odd, b"".join(_added(q, a, paused=int(i % 3 == 0), reason=["", "lunch", 'k"x', "w\\eird\né"][i % 4],
                               status=1 + i % 3)
                        for i, (q, a) in enumerate((q, a) for q in ODD for a in ODD)))
    return m, odd, empty


def _same(m: QmonMetrics, what: str) -> None:
    snap = m.snapshot()
    assert m.render(snap) == m.expose_reference(snap), what


def test_odd_names_leaving_rejoining_and_changing_state_render_as_generate_latest() -> None:
    m, odd, _ = _setup()
    _same(m, "first")
    ts = 1.8e9
    for step in range(6):
        ts += 13.5
        a, q = ODD[step % len(ODD)], ODD[(step * 3) % len(ODD)]
        _feed(odd, _removed(q, a))
        _same(m, f"{step}: removed")
        _feed(odd, _pause(ODD[1], ODD[2], step % 2, ["lunch", "other thing", 'k"x', "ü\\\n"][step % 4], ts))
        _feed(odd, _status(ODD[3], ODD[4], 1 + step % 3, ts))
        odd.tracker.agents.hold(ts)
        _same(m, f"{step}: paused and status")
        _feed(odd, _added(q, a, paused=1, reason="brand\nnew \"reason\""))
        _same(m, f"{step}: rejoined")
        _feed(odd, _added(f"new{step}\\", f'"{step}'))
        _same(m, f"{step}: a new queue and agent")


def test_overlapping_scrapes_while_events_arrive_each_equal_their_own_reference() -> None:
    m, odd, _ = _setup()

    async def main() -> None:
        stop = False

        async def events() -> None:
            ts = 1.8e9
            i = 0
            while not stop:
                ts += 1.25
                i += 1
                _feed(odd, _pause(ODD[i % 7], ODD[(i * 2) % 7], i % 2, ["lunch", "x", 'k"x'][i % 3], ts))
                odd.tracker.agents.hold(ts)
                await asyncio.sleep(0)

        feeder = asyncio.create_task(events())
        try:
            for _ in range(5):
                results = await asyncio.gather(*(m.expose_async(slice_s=0.0) for _ in range(3)))
                assert all(r.count(b"\n") > 1000 for r in results)
                assert gc.isenabled()
            stop = True
            await feeder
            snap = m.snapshot()
            assert await m.expose_async(slice_s=0.0) == m.expose_reference(snap)
        finally:
            stop = True

    asyncio.run(main())
    assert gc.isenabled()


def test_a_scrape_cancelled_mid_render_leaves_gc_on_and_the_caches_sound() -> None:
    m, odd, _ = _setup()

    async def main() -> None:
        for turns in (1, 3, 7, 15):
            task = asyncio.create_task(m.expose_async(slice_s=0.0))
            for _ in range(turns):
                await asyncio.sleep(0)
            assert not gc.isenabled() or task.done()  # inside the render: no automatic collection
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert gc.isenabled()
            _feed(odd, _pause(ODD[turns % 7], ODD[2], 1, "lunch", 1.8e9 + turns))
            odd.tracker.agents.hold(1.8e9 + turns)
            snap = m.snapshot()
            assert await m.expose_async(slice_s=0.0) == m.expose_reference(snap)

    asyncio.run(main())
    assert gc.isenabled()
