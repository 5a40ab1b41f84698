"""``qmon run``: the one wiring module that owns the daemon's lifecycle.

Per ``[[ami]]``: a :class:`CallTracker`, an :class:`Ingest` whose sinks are the metrics and the store, and the
live :class:`AmiSource`. Shared: the store writer, the HTTP server, the survey FastAGI server (when installed).
All long-running work runs in one TaskGroup with named tasks. SIGTERM/SIGINT stop it in reverse order: HTTP and
AGI listeners, AMI connections, then open calls are closed as ``shutdown`` and written, the writer drains
(the rest goes to the journal) and the engine is disposed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, disable_created_metrics

from monitor.ami.live import AmiSource
from monitor.core.ingest import Ingest
from monitor.core.records import CallClosed, MemberNote, Note, OwedNote
from monitor.core.tracker import CallTracker, TrackerConfig
from monitor.http import ApiContext, LivePbx, make_app, start_http
from monitor.metrics import QmonMetrics, pbx_clock
from monitor.settings import Settings, wrapup_pairs
from monitor.store.store import Store

log = logging.getLogger("qmon")


@dataclass
class Daemon:
    """Handles to the running parts (given to ``ready_cb``; tests and the demo read ports and state here)."""

    settings: Settings
    metrics: QmonMetrics
    store: Store
    pbxs: dict[str, LivePbx] = field(default_factory=dict)
    sources: dict[str, AmiSource] = field(default_factory=dict)
    http_port: int = 0
    survey_port: int | None = None
    clock: Callable[[], float] = time.time  # the daemon's clock (s); never compared with PBX event time
    stop: asyncio.Event = field(default_factory=asyncio.Event)


def _store_sink(store: Store, pbx: str) -> Callable[[list[Note]], None]:
    def sink(notes: list[Note]) -> None:
        for n in notes:
            if isinstance(n, CallClosed):
                store.submit(n.record)
            elif isinstance(n, MemberNote):
                store.submit_member(n, pbx)
            elif isinstance(n, OwedNote):
                store.submit_owed(n)

    return sink


async def _build_pbx(d: Daemon, index: int) -> None:
    s = d.settings
    ami = s.ami[index]
    t = s.tracker
    repeats = d.store.repeat_index(t.repeat_windows, t.repeat_max_entries)
    try:
        # Repeat callers must survive restarts: warm the index from stored calls (a dead database is not fatal).
        warmed = await asyncio.wait_for(d.store.load_repeat_index(repeats, pbx=ami.name), 30.0)
        log.info("AMI %s: repeat-caller index warmed with %d stored call(s)", ami.name, warmed)
    except Exception as exc:
        log.warning("AMI %s: repeat-caller index not warmed (%s)", ami.name, type(exc).__name__)
    tracker = CallTracker(TrackerConfig(abandon_short_s=t.abandon_short_s, repeat_windows=t.repeat_windows,
                                        repeat_max_entries=t.repeat_max_entries, pbx=ami.name,
                                        pause_reasons=t.pause_reasons, wrapup_s=wrapup_pairs(t),
                                        owed_horizon_s=t.owed_horizon_s), repeats)
    try:
        # Owed callbacks survive restarts: reload the open ones (a week back at most; a dead database is not fatal).
        owed = await asyncio.wait_for(d.store.load_owed(ami.name), 30.0)
        log.info("AMI %s: %d owed callback(s) reloaded", ami.name, tracker.owed.restore(owed))
    except Exception as exc:
        log.warning("AMI %s: owed callbacks not reloaded (%s)", ami.name, type(exc).__name__)
    tracker.queues.update(t.queues)
    ingest = Ingest(tracker, [d.metrics.sink(ami.name), _store_sink(d.store, ami.name)], pbx=ami.name)
    source = AmiSource(ami, ingest, clock=d.clock)
    d.metrics.add_pbx(ami.name, tracker, ingest, source)
    d.pbxs[ami.name] = LivePbx(tracker, ingest, source)
    d.sources[ami.name] = source


def _survey_parts(d: Daemon) -> Any:
    """The survey parts (``monitor.survey_wiring``), or None when disabled."""
    from monitor.survey_wiring import build_survey

    return build_survey(d)


async def run_daemon(settings: Settings, *, registry: CollectorRegistry | None = None,
                     stop: asyncio.Event | None = None, ready_cb: Callable[[Daemon], Any] | None = None,
                     clock: Callable[[], float] = time.time) -> int:
    """Run until ``stop`` is set (or SIGTERM/SIGINT); returns the exit code (0 = clean shutdown, nothing lost).

    ``clock`` is the daemon's wall clock (epoch seconds): every part that needs "now" gets it from here.
    """
    disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series double the cardinality and no query here needs them
    metrics = QmonMetrics(registry if registry is not None else CollectorRegistry(auto_describe=True),
                          queues=settings.tracker.queues, repeat_windows=settings.tracker.repeat_windows,
                          clock=clock)
    store = Store(settings.store, clock=clock)
    d = Daemon(settings, metrics, store, clock=clock, stop=stop or asyncio.Event())
    metrics.store_stats = lambda: store.stats
    await store.start()
    for i in range(len(settings.ami)):
        await _build_pbx(d, i)
    survey = _survey_parts(d)
    ctx = ApiContext(metrics, d.pbxs, store, settings.http.token, settings.tracker.sl_threshold_s, clock=clock)
    app = make_app(ctx,
                   store.query_surveys if survey is not None else None)
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread (tests): no signals
            loop.add_signal_handler(sig, d.stop.set)
            installed.append(sig)
    runner: web.AppRunner | None = None
    try:
        runner, d.http_port = await start_http(app, settings.http.bind, settings.http.port)
        if survey is not None:
            await survey.server.start()
            d.survey_port = survey.server.port
        async with asyncio.TaskGroup() as tg:
            writer = tg.create_task(store.run(), name="store-writer")
            ami_tasks = [tg.create_task(src.run(), name=f"ami-{name}") for name, src in d.sources.items()]
            if survey is not None:
                survey.start_tasks(tg)
            if ready_cb is not None:
                ready_cb(d)
            try:
                await d.stop.wait()
                log.info("shutting down")
            finally:
                # Shielded: a crashed task cancels this body, and the shutdown must still run to the end.
                await asyncio.shield(_shutdown(d, runner, survey, ami_tasks, writer))
                runner = None
    finally:
        if runner is not None:
            await runner.cleanup()
        for sig in installed:
            loop.remove_signal_handler(sig)
    return 0 if store.stats.get("lost", 0) == 0 else 1


async def _shutdown(d: Daemon, runner: web.AppRunner, survey: Any, ami_tasks: list[asyncio.Task[None]],
                    writer: asyncio.Task[None]) -> None:
    """Reverse order: listeners, AMI, close open calls as ``shutdown``, drain the writer, dispose the engine."""
    s = d.settings
    with contextlib.suppress(Exception):
        await asyncio.wait_for(runner.cleanup(), 5.0)
    if survey is not None:
        await survey.close()
    for src in d.sources.values():
        with contextlib.suppress(Exception):
            await asyncio.wait_for(src.close(), 3.0)
    if ami_tasks:
        _, pending = await asyncio.wait(ami_tasks, timeout=5.0)
        for t in pending:
            t.cancel()
    now = d.clock()
    for name, p in d.pbxs.items():
        # Nothing lost: calls still open are closed and written like any other (closed_by = shutdown).
        notes = p.tracker.close_all(pbx_clock(p.tracker, now), "shutdown")
        if notes:
            log.info("AMI %s: %d open call(s) closed as shutdown", name, len(notes))
            p.ingest.emit(notes)
    all_written = await d.store.drain(s.store.drain_timeout_s)
    if not all_written:
        log.warning("store: not everything reached the database before the drain timeout; the rest is in the "
                    "journal %s and is replayed on the next start", s.store.journal_path)
    if not writer.done():
        writer.cancel()
    await d.store.close()


def cmd_run(argv: list[str], env: Mapping[str, str]) -> int:
    """``qmon run [--config FILE] [flags]``: load settings (exit 2 on any problem), run until SIGTERM."""
    from monitor.config import load_or_report

    settings = load_or_report(argv, env)
    if settings is None:
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def ready(d: Daemon) -> None:
        log.info("qmon ready: http://%s:%d/metrics, AMI %s", settings.http.bind, d.http_port,
                 ", ".join(f"{a.name}={a.host}:{a.port}" for a in settings.ami))

    return asyncio.run(run_daemon(settings, ready_cb=ready))
