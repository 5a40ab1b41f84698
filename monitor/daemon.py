"""``qmon run``: the one wiring module; it builds every part from settings + a clock and owns their lifecycle.

Per ``[[ami]]``: a :class:`CallTracker` behind an :class:`Ingest` whose sinks are the metrics and the store, and the
live :class:`AmiSource`. Shared: the store writer, the HTTP server, the survey FastAGI server (when enabled).
What is opened is registered on an :class:`contextlib.AsyncExitStack` the moment it opens, so a failure anywhere
(the HTTP port taken, say) closes exactly what was opened, in reverse. Long-running work runs in one TaskGroup
with named tasks. SIGTERM/SIGINT stop it in reverse order: HTTP and AGI listeners, AMI connections, then open
calls are closed as ``shutdown`` and written, the writer drains (the rest goes to the journal), the engine is
disposed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, disable_created_metrics

from monitor.ami.live import AmiSource
from monitor.config import number_normalizer, queue_sl_targets, tracker_config
from monitor.core.ingest import Ingest
from monitor.core.records import CallAmended, CallClosed, CallRecord, MemberNote, Note, OwedNote, SurveyNote
from monitor.core.servicelevel import sl_definition_map
from monitor.core.survey import SurveyPolicy, SurveyResultRecord
from monitor.core.today import DayTally
from monitor.core.tracker import CallTracker
from monitor.settings import Settings
from monitor.store.journal import JournalBusy
from monitor.store.store import Store
from monitor.survey.callback import CallbackScheduler
from monitor.survey.config import callback_config, policy_config
from monitor.survey.durations import default_durations, dialplan_timeout_s, load_durations
from monitor.survey.results import Webhook
from monitor.survey.server import SurveyServer
from monitor.survey.state import SurveyState
from monitor.web.metrics import QmonMetrics
from monitor.web.server import ApiContext, LivePbx, make_app, start_http
from monitor.web.wallboard import BoardPbx, OwedProvider, SinceProvider, Wallboard

log = logging.getLogger("qmon")

#: How often the event-loop lag is sampled (s): a timer asks to wake after this long and measures how late it is.
LAG_INTERVAL_S = 0.25
#: Bounds (s) of the shutdown's steps, in order: the HTTP runner, the survey server (its own 5 s grace for running
#: surveys and the drain of the listen queue, then cut and stored), the survey webhook's drain, each AMI connection's
#: close, the AMI tasks' end; the store's drain_timeout_s follows (see shutdown_bound_s).
CLOSE_HTTP_S, CLOSE_SURVEY_S, DRAIN_WEBHOOK_S, CLOSE_AMI_S, END_AMI_S = 5.0, 8.0, 5.0, 3.0, 5.0


def shutdown_bound_s(pbxs: int, drain_timeout_s: float) -> float:
    """The longest a SIGTERM shutdown takes (s) with ``pbxs`` AMI connections and every step at its bound: what a
    supervisor's stop timeout (systemd ``TimeoutStopSec``, compose ``stop_grace_period``) must exceed."""
    return CLOSE_HTTP_S + CLOSE_SURVEY_S + DRAIN_WEBHOOK_S + CLOSE_AMI_S * pbxs + END_AMI_S + drain_timeout_s


class StartupError(RuntimeError):
    """A part could not start (e.g. the HTTP port is taken); the message is one line for stderr."""


@dataclass
class Pbx:
    """One AMI connection's parts; adapters reach the tracker only through ``ingest``."""

    ingest: Ingest
    source: AmiSource


@dataclass
class Daemon:
    """Handles to the running parts (given to ``ready_cb``; tests and the demo read ports and state here)."""

    settings: Settings
    metrics: QmonMetrics
    store: Store
    pbxs: dict[str, Pbx] = field(default_factory=dict)
    http_port: int = 0
    survey_port: int | None = None
    survey: SurveyParts | None = None  # the survey server, its state, webhook and callback scheduler (when enabled)
    clock: Callable[[], float] = time.time  # the daemon's clock (s); never compared with PBX event time
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def sources(self) -> dict[str, AmiSource]:
        """The AMI sources by pbx name."""
        return {name: p.source for name, p in self.pbxs.items()}


@dataclass
class SurveyParts:
    """What the daemon runs for surveys."""

    server: SurveyServer
    state: SurveyState
    webhook: Webhook | None = None
    callbacks: CallbackScheduler | None = None


def _build_wallboard(d: Daemon) -> Wallboard | None:
    """The wallboard's per-PBX day tallies (a notes sink each), providers and targets; None when it is off.

    Per PBX: callbacks owed by queue from the tracker's owed list (one per number still owed a call, counted in the
    queue of its latest unanswered call), and since when each member is in its state from the agents' board.
    """
    w = d.settings.wallboard
    if not w.enabled:
        return None
    t = d.settings.tracker
    pbxs: dict[str, BoardPbx] = {}
    for name, p in d.pbxs.items():
        tally = DayTally(t.sl_threshold_s)
        p.ingest.sinks.append(tally.sink)
        pbxs[name] = BoardPbx(p.ingest, p.source, tally, _owed_by_queue(p.ingest.tracker),
                              _since_by_member(p.ingest.tracker))
    return Wallboard(pbxs, t.queues, t.sl_threshold_s, w.sl_target, w.sl_amber_margin, queue_sl_targets(w),
                     sl_definition_map(t.sl_definition, t.queue_sl_definition), w.abandon_target,
                     w.abandon_amber_margin, w.refresh_s, w.cookie_max_age_s)


def _owed_by_queue(tracker: CallTracker) -> OwedProvider:
    def owed() -> Counter[str]:
        return Counter(o.queue or "" for o in tracker.owed.open())

    return owed


def _since_by_member(tracker: CallTracker) -> SinceProvider:
    def since(pbx_now: float) -> dict[tuple[str, str], tuple[str, float | None]]:
        return {(r.queue, r.agent): (r.state, r.since) for r in tracker.agents.snapshot(pbx_now)}

    return since


def _store_sink(store: Store, pbx: str) -> Callable[[list[Note]], None]:
    def sink(notes: list[Note]) -> None:
        for n in notes:
            if isinstance(n, (CallClosed, CallAmended)):  # an amended record replaces the stored one
                store.submit(n.record)
            elif isinstance(n, MemberNote):
                store.submit_member(n, pbx)
            elif isinstance(n, OwedNote):
                store.submit_owed(n)
            elif isinstance(n, SurveyNote) and n.answer is not None:
                store.submit_survey(n.answer, pbx)

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
    tracker = CallTracker(tracker_config(t, ami.name), repeats)
    tracker.queues.update(t.queues)
    try:
        # Owed callbacks survive restarts: reload the open ones (a week back at most; a dead database is not fatal).
        owed = await asyncio.wait_for(d.store.load_owed(ami.name), 30.0)
        log.info("AMI %s: %d owed callback(s) reloaded", ami.name, tracker.owed.restore(owed))
    except Exception as exc:
        log.warning("AMI %s: owed callbacks not reloaded (%s)", ami.name, type(exc).__name__)
    ingest = Ingest(tracker, [d.metrics.sink(ami.name), _store_sink(d.store, ami.name)], pbx=ami.name)
    source = AmiSource(ami, ingest, clock=d.clock)
    d.metrics.add_pbx(ami.name, ingest, source)
    d.pbxs[ami.name] = Pbx(ingest, source)


def _build_survey(d: Daemon, stack: contextlib.ExitStack) -> SurveyParts | None:
    """The survey server wired to the ingests (one path for every answer), the webhook and callbacks."""
    s = d.settings.survey
    if not s.enabled:
        return None
    pbxs = list(d.pbxs.values())

    def lookup(uniqueid: str | None, linkedid: str | None) -> CallRecord | None:
        for p in pbxs:
            if (rec := p.ingest.find_call(uniqueid, linkedid)) is not None:
                return rec
        return None

    def on_answer(answer: SurveyResultRecord) -> None:
        # The ingest whose tracker knows the call (open or recently closed) takes it, else the first one: it
        # attaches the answer and hands one note to every sink (metrics, store).
        owner = next((p for p in pbxs if p.ingest.knows(answer.uniqueid, answer.linkedid)), pbxs[0] if pbxs else None)
        if owner is not None:
            owner.ingest.survey(answer)
        if webhook is not None:
            webhook.submit(answer)

    policy = SurveyPolicy(policy_config(s))
    try:
        durations = load_durations(s.durations_file) if s.durations_file else default_durations()
    except (OSError, ValueError) as exc:
        raise StartupError(f"survey.durations_file: cannot use {s.durations_file}: "
                           f"{getattr(exc, 'strerror', None) or exc}") from exc
    if not s.max_duration_s:
        log.info("survey: each survey ends within the prompts' worst case; the dialplan's QMON_SURVEY_TIMEOUT must "
                 "be at least %d s and QMON_CALLBACK_TIMEOUT %d s for these questions (asterisk/budget.py)",
                 dialplan_timeout_s(policy, durations), dialplan_timeout_s(policy, durations, callback=True))
    state = SurveyState(s.state_path, number_normalizer(d.settings.tracker))
    stack.callback(state.close)
    webhook = Webhook(s.webhook_url, s.webhook_max_score, retries=s.webhook_retries) if s.webhook_url else None
    callbacks = None
    if s.callback_enabled and pbxs:
        source = pbxs[0].source  # callbacks originate through the first [[ami]] connection

        def send(action: dict[str, Any]) -> Coroutine[Any, Any, Any]:
            # The Originate's Response only: whether the callee answers arrives later as an OriginateResponse
            # event (on_originate_response below), not by holding this call for the whole ring time.
            return source.send_action(action, response_only=True)

        callbacks = CallbackScheduler(callback_config(s), policy, send, on_answer, cooldown=state, optout=state)
        cb = callbacks
        source.on_event("OriginateResponse", lambda h: cb.on_originate_response(_flat(h), d.clock()))
        for p in pbxs:  # a call cut by `core restart` looks like a caller hang-up but for this (Cause 4)
            p.source.on_event("SoftHangupRequest", lambda h: cb.on_soft_hangup_request(_flat(h), d.clock()))
        for p in pbxs:
            p.ingest.sinks.append(_offer(cb, p.ingest, d.clock))
        log.info("survey callbacks enabled through AMI %s", source.name)
    server = SurveyServer(policy, lookup=lookup, on_result=on_answer, cooldown=state, optout=state,
                          callbacks=callbacks, bind=s.bind, port=s.port, header_timeout_s=s.header_timeout_s,
                          max_header_bytes=s.max_header_bytes, clock=d.clock, max_sessions=s.max_sessions,
                          durations=durations, work_deadline_s=s.work_deadline_s, reply_slack_s=s.reply_slack_s,
                          trace_var=s.trace_var)
    d.survey = SurveyParts(server, state, webhook, callbacks)
    return d.survey


def _flat(headers: Mapping[str, str | list[str]]) -> dict[str, str]:
    """AMI headers with a repeated key reduced to its first value."""
    return {k: v if isinstance(v, str) else v[0] for k, v in headers.items()}


def _offer(callbacks: CallbackScheduler, ingest: Ingest, clock: Callable[[], float]) -> Callable[[list[Note]], None]:
    def offer(notes: list[Note]) -> None:
        for n in notes:
            if isinstance(n, CallClosed):
                # The call's age is measured on the PBX clock (its last event), its expiry on ours.
                now = clock()
                callbacks.offer(n.record, now, pbx_now=ingest.pbx_now(now))

    return offer


@contextlib.contextmanager
def _signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM/SIGINT set ``stop`` while the block runs (not in a non-main thread, e.g. under tests)."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _why(exc: OSError) -> str:
    """"Address already in use", not asyncio's wrapping of it."""
    return os.strerror(exc.errno) if exc.errno else str(exc)


async def watch_loop_lag(observe: Callable[[float], None], interval_s: float = LAG_INTERVAL_S) -> None:
    """Forever: sleep ``interval_s`` and ``observe`` how late (s, monotonic clock) the wake-up came; a blocked or
    overloaded loop shows here before Asterisk drops our AMI session (its events wait as long)."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(interval_s)
        observe(max(0.0, loop.time() - start - interval_s))


def freeze_startup_heap() -> None:
    """Collect, then keep every object alive now out of the collector's generations until ``gc.unfreeze()``.

    What the set-up daemon holds (modules, settings, pre-created series and their locks: ~100 k objects at 200
    queues) then stays out of full GC passes: each walks every object while the AMI reader and the surveys wait.
    Called once start-up is done (``bench/load.py agi`` calls it after starting its survey server, as here).
    """
    gc.collect()
    gc.freeze()


async def _bounded(close: Callable[[], Coroutine[Any, Any, Any]], timeout_s: float) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(close(), timeout_s)


async def run_daemon(settings: Settings, *, registry: CollectorRegistry | None = None,
                     stop: asyncio.Event | None = None, ready_cb: Callable[[Daemon], Any] | None = None,
                     clock: Callable[[], float] = time.time) -> int:
    """Run until ``stop`` is set (or SIGTERM/SIGINT); returns the exit code (0 = clean shutdown, nothing lost).

    ``clock`` is the daemon's wall clock (epoch seconds): every part that needs "now" gets it from here.
    Raises :class:`StartupError` when a listener cannot start (whatever was opened is closed first).
    """
    disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series double the cardinality and no query here needs them
    store = Store(settings.store, clock=clock)
    metrics = QmonMetrics(registry if registry is not None else CollectorRegistry(auto_describe=True),
                          queues=settings.tracker.queues, repeat_windows=settings.tracker.repeat_windows,
                          clock=clock, store=store)
    d = Daemon(settings, metrics, store, clock=clock, stop=stop or asyncio.Event())
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(_signals(d.stop))
        try:
            await store.start()
        except JournalBusy as exc:  # a second daemon on the same journal would interleave two WALs
            raise StartupError(f"journal {settings.store.journal_path} is in use by another qmon ({exc})") from exc
        stack.push_async_callback(store.close)
        for i in range(len(settings.ami)):
            await _build_pbx(d, i)
        survey = _build_survey(d, stack.enter_context(contextlib.ExitStack()))
        ctx = ApiContext(metrics, {n: LivePbx(p.ingest, p.source) for n, p in d.pbxs.items()}, store,
                         settings.http.token, settings.tracker.sl_threshold_s, clock=clock)
        app = make_app(ctx, store.query_surveys if survey is not None else None, _build_wallboard(d))
        listeners = await stack.enter_async_context(contextlib.AsyncExitStack())
        h = settings.http
        try:
            runner, d.http_port = await start_http(app, h.bind, h.port)
        except OSError as exc:
            raise StartupError(f"cannot listen for HTTP on {h.bind}:{h.port}: {_why(exc)}") from exc
        listeners.push_async_callback(_bounded, runner.cleanup, CLOSE_HTTP_S)
        if survey is not None:
            try:
                await survey.server.start()
            except OSError as exc:
                raise StartupError(f"cannot listen for FastAGI on {settings.survey.bind}:{settings.survey.port}: "
                                   f"{_why(exc)}") from exc
            # close() bounds its own wait for running surveys (5 s) and then cancels them, so their answers are
            # stored before the writer drains; the outer bound only guards against a hang beyond that.
            listeners.push_async_callback(_bounded, survey.server.close, CLOSE_SURVEY_S)
            d.survey_port = survey.server.port
            metrics.survey_server = survey.server
        freeze_startup_heap()
        stack.callback(gc.unfreeze)
        await _serve(d, listeners, survey, ready_cb)
    return 0 if store.stats.get("lost", 0) == 0 else 1


async def _serve(d: Daemon, listeners: contextlib.AsyncExitStack, survey: SurveyParts | None,
                 ready_cb: Callable[[Daemon], Any] | None) -> None:
    """Every long-running task in one TaskGroup until ``stop``; then the shutdown runs to its end."""
    async with asyncio.TaskGroup() as tg:
        writer = tg.create_task(d.store.run(), name="store-writer")
        ami_tasks = [tg.create_task(p.source.run(), name=f"ami-{name}") for name, p in d.pbxs.items()]
        ami_tasks.append(tg.create_task(_tick(d), name="tracker-tick"))  # ends with the AMI tasks, before close_all
        lag = tg.create_task(watch_loop_lag(d.metrics.loop_lag.observe), name="event-loop-lag")
        survey_tasks: list[asyncio.Task[None]] = []
        if survey is not None and survey.webhook is not None:
            survey_tasks.append(tg.create_task(survey.webhook.run(), name="survey-webhook"))
        if survey is not None and survey.callbacks is not None:
            survey_tasks.append(tg.create_task(survey.callbacks.run(d.clock), name="survey-callbacks"))
        if ready_cb is not None:
            ready_cb(d)
        try:
            await d.stop.wait()
            log.info("shutting down")
        finally:
            # Shielded: a crashed task cancels this body, and the shutdown must still run to the end.
            lag.cancel()
            await asyncio.shield(_shutdown(d, listeners, survey, survey_tasks, ami_tasks, writer))


async def _tick(d: Daemon, every_s: float = 0.5) -> None:
    """Until ``stop``, every ``every_s`` (s): calls past their grace period after the caller's hang-up become final
    (stored, counted) even when no further event arrives."""
    while not d.stop.is_set():
        await asyncio.sleep(every_s)
        for p in d.pbxs.values():
            p.ingest.tick(d.clock())


async def _shutdown(d: Daemon, listeners: contextlib.AsyncExitStack, survey: SurveyParts | None,
                    survey_tasks: list[asyncio.Task[None]], ami_tasks: list[asyncio.Task[None]],
                    writer: asyncio.Task[None]) -> None:
    """Reverse order: listeners, survey webhooks, AMI, close open calls as ``shutdown``, drain the writer."""
    await listeners.aclose()
    if survey is not None and survey.webhook is not None:
        await survey.webhook.drain(DRAIN_WEBHOOK_S)
    for t in survey_tasks:
        t.cancel()
    for p in d.pbxs.values():
        await _bounded(p.source.close, CLOSE_AMI_S)
    if ami_tasks:
        _, pending = await asyncio.wait(ami_tasks, timeout=END_AMI_S)
        for t in pending:
            t.cancel()
    now = d.clock()
    for name, p in d.pbxs.items():
        # Nothing lost: calls still open are closed and written like any other (closed_by = shutdown); calls whose
        # caller hung up within the grace period close as hangup.
        notes = p.ingest.close_all(now, "shutdown")
        shut = sum(1 for n in notes if isinstance(n, CallClosed) and n.record.closed_by == "shutdown")
        if shut:
            log.info("AMI %s: %d open call(s) closed as shutdown", name, shut)
    s = d.settings.store
    if not await d.store.drain(s.drain_timeout_s):
        log.warning("store: not everything reached the database before the drain timeout; the rest is in the "
                    "journal %s and is replayed on the next start", s.journal_path)
    if not writer.done():
        writer.cancel()
