"""What the operator sees on the log: "ready" once every AMI login succeeded, then one status line per interval.

The status line: AMI state per PBX, events/s since the last line, open calls, waiting callers, the store's
queue and journal depth. It reads the running daemon through the small :class:`Running` interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

log = logging.getLogger("qmon")


class _Source(Protocol):
    @property
    def connected(self) -> bool: ...
    @property
    def last_error(self) -> str: ...


class _Tracker(Protocol):
    @property
    def open_calls(self) -> int: ...
    def waiting(self) -> dict[str, list[float]]: ...


class _Ingest(Protocol):
    @property
    def events(self) -> int: ...
    @property
    def tracker(self) -> _Tracker: ...


class _Pbx(Protocol):
    @property
    def ingest(self) -> _Ingest: ...


class _Store(Protocol):
    @property
    def stats(self) -> dict[str, Any]: ...


class Running(Protocol):
    """What the status reads of the running daemon (``monitor.daemon.Daemon`` fits)."""

    @property
    def sources(self) -> Mapping[str, _Source]: ...
    @property
    def pbxs(self) -> Mapping[str, _Pbx]: ...
    @property
    def store(self) -> _Store: ...
    @property
    def stop(self) -> asyncio.Event: ...


def status_line(d: Running, events_per_s: Mapping[str, float]) -> str:
    """One line: ``ami pbx1=up 12.5 ev/s | open calls 4 | waiting 2 | store queue 0 journal 0 db up``."""
    ami = " ".join(
        f"{name}={'up' if src.connected else 'down'}"
        + ("" if src.connected or not src.last_error else f" ({src.last_error})")
        + f" {events_per_s.get(name, 0.0):.1f} ev/s"
        for name, src in sorted(d.sources.items()))
    open_calls = sum(p.ingest.tracker.open_calls for p in d.pbxs.values())
    waiting = sum(len(w) for p in d.pbxs.values() for w in p.ingest.tracker.waiting().values())
    st = d.store.stats
    store = (f"store queue {st.get('queue_depth', 0)} journal {st.get('journal_lines', 0)} "
             f"db {'up' if st.get('db_up', True) else 'DOWN'}")
    return f"status: ami {ami or '-'} | open calls {open_calls} | waiting {waiting} | {store}"


async def watch(d: Running, interval_s: float, ready_msg: str, clock: Callable[[], float] = time.monotonic,
                poll_s: float = 0.2) -> None:
    """Log ``ready_msg`` once every AMI source is logged in (not before: "ready" must mean data flows), and
    :func:`status_line` every ``interval_s`` (0 = never) until ``d.stop`` is set. ``clock`` (monotonic s) only
    paces the lines and measures events/s."""
    ready = False
    last_t = clock()
    last = {n: p.ingest.events for n, p in d.pbxs.items()}
    while not d.stop.is_set():
        if not ready and all(s.connected for s in d.sources.values()):
            ready = True
            log.info("%s", ready_msg)
            if interval_s <= 0:
                return
        now = clock()
        if interval_s > 0 and now - last_t >= interval_s:
            counts = {n: p.ingest.events for n, p in d.pbxs.items()}
            rates = {n: (c - last.get(n, 0)) / (now - last_t) for n, c in counts.items()}
            log.info("%s", status_line(d, rates))
            last_t, last = now, counts
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(d.stop.wait(), poll_s)


def start_watch(d: Running, interval_s: float, ready_msg: str) -> asyncio.Task[None]:
    """:func:`watch` as a named task of the running loop (from a ``ready_cb``)."""
    return asyncio.get_running_loop().create_task(watch(d, interval_s, ready_msg), name="status")


def quiet_libraries(level: str) -> None:
    """Alembic logs its set-up ("Context impl SQLiteImpl", ...) at INFO on every start: only warnings, unless DEBUG."""
    if level.upper() != "DEBUG":
        logging.getLogger("alembic").setLevel(logging.WARNING)
