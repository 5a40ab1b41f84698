"""Prometheus metrics: counters fed by a notes sink per PBX, gauges snapshotted from the trackers at scrape time.

Metric names and labels are a public contract (``docs/metrics.md``). Labels never hold a caller number, a
call id or a channel: only pbx, queue, agent (member name) and small fixed vocabularies.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, generate_latest

from monitor.core.ingest import LiveState
from monitor.core.owed import CLOSED_BY
from monitor.core.records import (
    CallClosed,
    Note,
    OwedNote,
    RepeatNote,
    SegmentNote,
    SurveyNote,
    TalkNote,
    TransferNote,
    VoicemailNote,
)
from monitor.core.vocab import (
    ANSWERED_SURVEY,
    CALL_OUTCOME_LABELS,
    VOICEMAIL_REASONS,
    nps_bucket,
    valid_ces,
    valid_csat,
    valid_nps,
)
from monitor.settings import WAIT_BUCKETS_S
from monitor.web.collectors import RENDERER, SNAPSHOT, Instruments, PbxSnapshot, Snapshot, StateCollector
from monitor.web.exposition import ObservedHistogram as Histogram
from monitor.web.exposition import Renderer

CALL_OUTCOMES = CALL_OUTCOME_LABELS  # every outcome label, pre-created per queue (the last two: no wait histogram)
TRANSFER_TYPES = ("blind", "attended")
CSAT_SCORES = ("1", "2", "3", "4", "5")
SURVEY_RESULTS = ("completed", "no_input", "invalid")
WAIT_BUCKETS = WAIT_BUCKETS_S  # one definition (monitor.settings): config checks sl_threshold_s against it
TALK_BUCKETS = (15, 30, 60, 120, 180, 300, 600, 900, 1800, 3600)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TTC_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400)  # time to callback: a minute to a day
SCRAPE_SLICE_S = 0.004  # a scrape hands the event loop back this often (s) while it writes the exposition


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No automatic garbage collection inside (unless it was off already): a scrape's snapshot and text are some
    ten thousand containers alive for ~0.1 s and then freed at once; collections meanwhile walk them, promote them
    to the old generation and so bring on a full collection (~20-40 ms at 10 000 members) nearly every scrape.
    Collected afterwards, they are mostly gone (their count is given back as they are freed)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class SourceState(Protocol):
    """What the collector reads from an AMI source (``monitor.ami.live.AmiSource``)."""

    @property
    def connected(self) -> bool:
        """Logged in right now."""
        ...

    @property
    def reconnects(self) -> int:
        """Reconnections since start."""
        ...


class LiveSource(Protocol):
    """What the collector reads of one PBX's calls, queues and members (:class:`~monitor.core.ingest.Ingest`)."""

    def live(self, now: float, *, views: bool = True) -> LiveState:
        """A snapshot at daemon time ``now`` (epoch s); ``views=False``: without what /metrics never reads."""
        ...


class StoreStats(Protocol):
    """What the collector reads from the store (:class:`~monitor.store.store.Store`)."""

    @property
    def stats(self) -> Mapping[str, Any]:
        """Writer counters and gauges (see ``monitor.web.collectors._store_families`` for the keys read)."""
        ...


class SurveyServerStats(Protocol):
    """What the collector reads from the FastAGI server (:class:`~monitor.survey.server.SurveyServer`)."""

    @property
    def stats(self) -> Mapping[str, int]:
        """Server counters (see ``monitor.web.collectors._survey_server_families``)."""
        ...


@dataclass
class _Pbx:
    live: LiveSource
    source: SourceState | None


class QmonMetrics:
    """Every qmon metric in one injected registry."""

    def __init__(self, registry: CollectorRegistry | None = None, *, queues: Iterable[str] = (),
                 repeat_windows: Iterable[str] = ("24h",), clock: Callable[[], float] = time.time,
                 store: StoreStats | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.queues = tuple(queues)
        self.repeat_windows = tuple(repeat_windows)
        self.clock = clock
        self.started = clock()
        self.pbxs: dict[str, _Pbx] = {}
        self.store = store
        self.survey_server: SurveyServerStats | None = None  # set by the daemon when surveys are enabled
        self._known: set[tuple[str, str]] = set()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}  # (id(metric), labels) -> its child
        self.renderer = Renderer()
        self._scrape = asyncio.Lock()
        self.registry.register(StateCollector(self.snapshot, self.started))
        # The instruments are registered through one collector (in this order) so that a scrape can read them
        # through the renderer's fast path; the library's collect() stays what get_sample_value() and tests see.
        instruments = Instruments()
        r: Any = instruments
        self.calls = Counter("qmon_queue_calls", "Queue segments by outcome (abandoned and abandoned_short are "
                             "disjoint; transferred counts transfers of answered queue calls)",
                             ["pbx", "queue", "outcome"], registry=r)
        self.voicemail = Counter("qmon_queue_voicemail", "Calls that left a queue unanswered and reached VoiceMail",
                                 ["pbx", "queue", "reason"], registry=r)
        self.transfers = Counter("qmon_transfers", "Transfers of queue calls by the member who had them",
                                 ["pbx", "queue", "type"], registry=r)
        self.repeats = Counter("qmon_repeat_calls", "Calls from a number that called before within the window",
                               ["pbx", "queue", "window"], registry=r)
        # Per-agent series come from the AgentBoard at scrape time (monitor.web.supervisor), not from here.
        self.last_queue_calls = Counter("qmon_calls_by_last_queue", "Calls, each once, by the queue they ended in "
                                        "(their last queue segment): the true abandonment denominator",
                                        ["pbx", "queue"], registry=r)
        self.ttc = Histogram("qmon_owed_time_to_callback_seconds", "From the end of an unanswered call to its number "
                             "reaching an agent (owed callback closed)", ["pbx", "queue", "closed_by"],
                             buckets=TTC_BUCKETS, registry=r)
        self.csat = Counter("qmon_csat_responses", "Valid CSAT answers (1-5)", ["pbx", "queue", "score"], registry=r)
        self.survey = Counter("qmon_survey_outcomes", "Survey results", ["pbx", "queue", "result"], registry=r)
        self.nps = Counter("qmon_nps_responses", "NPS answers (0-10) by bucket: promoter 9-10, passive 7-8, "
                           "detractor 0-6", ["pbx", "queue", "bucket"], registry=r)
        self.ces = Counter("qmon_ces_responses", "Customer-effort answers (1-5)", ["pbx", "queue", "score"],
                           registry=r)
        self.wait = Histogram("qmon_queue_wait_seconds", "Time in queue until the segment's outcome",
                              ["pbx", "queue", "outcome"], buckets=WAIT_BUCKETS, registry=r)
        self.talk = Histogram("qmon_queue_talk_seconds", "Talk time of answered queue calls", ["pbx", "queue"],
                              buckets=TALK_BUCKETS, registry=r)
        self.loop_lag = Histogram("qmon_event_loop_lag_seconds", "How late the daemon's periodic timer ran (the "
                                  "event loop was busy or blocked that long; AMI events wait as long)",
                                  buckets=LAG_BUCKETS, registry=r)
        self.registry.register(instruments)

    # -- wiring ----------------------------------------------------------------------------------------

    def add_pbx(self, name: str, live: LiveSource, source: SourceState | None = None) -> None:
        """Register one AMI connection's state for the scrape-time gauges; configured queues appear at 0."""
        self.pbxs[name] = _Pbx(live, source)
        for q in self.queues:
            self.ensure_queue(name, q)

    def known_queues(self, pbx: str) -> set[str]:
        """Queues whose series exist for ``pbx`` (configured, counted or discovered)."""
        return {q for (p, q) in self._known if p == pbx}

    def expose(self) -> bytes:
        """The Prometheus text exposition: series of queues learned since the last scrape are
        created first (at 0), so they appear in this very scrape; collecting itself changes nothing."""
        return self.render(self.snapshot())

    async def expose_async(self, slice_s: float = SCRAPE_SLICE_S) -> bytes:
        """:meth:`expose` on the event loop in slices (see :meth:`expose_parts`)."""
        return b"".join(await self.expose_parts(slice_s))

    async def expose_parts(self, slice_s: float = SCRAPE_SLICE_S) -> list[bytes]:
        """:meth:`expose`'s text in parts, made on the event loop in slices: the snapshot is taken at once (the
        trackers are not thread-safe), then the text is written a family or a column at a time, handing the loop
        back to the AMI reader whenever ``slice_s`` (s) have passed. (A worker thread would hold the GIL in 5 ms
        turns against the reader and stretch both; a render is ~20-50 ms of CPU at 10 000 members:
        docs/performance.md.) The parts are sent as they are: joining 20 MB would only copy it once more."""
        async with self._scrape:  # one render at a time: scrapes share the renderer's caches
            with _collector_paused():
                return await self._expose_parts(slice_s)

    async def _expose_parts(self, slice_s: float) -> list[bytes]:
        parts: list[bytes] = []
        with self._rendering(self.snapshot()):  # the lock is never contended here: only this holds it across an await
            until = time.perf_counter() + slice_s
            for part in self.renderer.parts(self.registry.collect()):
                parts.append(part)
                if time.perf_counter() >= until:
                    await asyncio.sleep(0)
                    until = time.perf_counter() + slice_s
        return parts

    def render(self, snap: Snapshot) -> bytes:
        """The exposition of ``snap`` by the fast writer (``monitor.web.exposition``): byte for byte
        :meth:`expose_reference`'s text, tens of times faster on a large call center (docs/performance.md)."""
        with self._rendering(snap):
            return self.renderer.render(self.registry.collect())

    @contextlib.contextmanager
    def _rendering(self, snap: Snapshot) -> Iterator[None]:
        # The collectors read this scrape's snapshot and yield their large families as the renderer's text.
        with self.renderer.lock:
            tokens = SNAPSHOT.set(snap), RENDERER.set(self.renderer)
            try:
                yield
            finally:
                RENDERER.reset(tokens[1])
                SNAPSHOT.reset(tokens[0])

    def expose_reference(self, snap: Snapshot | None = None) -> bytes:
        """The same exposition written by prometheus-client's ``generate_latest`` (the reference for tests)."""
        token = SNAPSHOT.set(snap or self.snapshot())
        try:
            return bytes(generate_latest(self.registry))
        finally:
            SNAPSHOT.reset(token)

    def snapshot(self) -> Snapshot:
        """Copies of everything the scrape-time gauges read (on the event loop: the trackers are not thread-safe);
        creates the series of queues learned since the last scrape first."""
        now = self.clock()
        pbxs: dict[str, PbxSnapshot] = {}
        for name, p in self.pbxs.items():
            st = p.live.live(now, views=False)
            for q in st.queues:
                self.ensure_queue(name, q)
            src = p.source
            pbxs[name] = PbxSnapshot(st, frozenset(self.known_queues(name)), src is not None and src.connected,
                                     src.reconnects if src is not None else 0)
        store = dict(self.store.stats) if self.store is not None else None
        survey = dict(self.survey_server.stats) if self.survey_server is not None else None
        return Snapshot(now, pbxs, store, survey)

    def ensure_queue(self, pbx: str, queue: str) -> None:
        """Create every per-queue series of ``queue`` at 0 (idempotent)."""
        if (pbx, queue) in self._known or not queue:
            return
        self._known.add((pbx, queue))
        for o in CALL_OUTCOMES:
            self.calls.labels(pbx, queue, o)
        for o in CALL_OUTCOMES[:-2]:
            self.wait.labels(pbx, queue, o)
        for reason in VOICEMAIL_REASONS:
            self.voicemail.labels(pbx, queue, reason)
        for t in TRANSFER_TYPES:
            self.transfers.labels(pbx, queue, t)
        for w in self.repeat_windows:
            self.repeats.labels(pbx, queue, w)
        for s in CSAT_SCORES:
            self.csat.labels(pbx, queue, s)
        for res in SURVEY_RESULTS:
            self.survey.labels(pbx, queue, res)
        self.talk.labels(pbx, queue)
        self.last_queue_calls.labels(pbx, queue)
        for how in CLOSED_BY:
            self.ttc.labels(pbx, queue, how)

    # -- the notes sink --------------------------------------------------------------------------------

    def sink(self, pbx: str) -> Callable[[list[Note]], None]:
        """A notes sink (for :class:`~monitor.core.ingest.Ingest`) that counts into this PBX's series."""

        def feed(notes: list[Note]) -> None:
            for n in notes:
                self.observe(pbx, n)

        return feed

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered (prometheus-client validates and locks on every call)."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, pbx: str, n: Note) -> None:
        """Count one note."""
        if isinstance(n, SegmentNote):
            self.ensure_queue(pbx, n.queue)
            self._child(self.calls, pbx, n.queue, n.outcome).inc()
            if n.wait_s is not None:
                self._child(self.wait, pbx, n.queue, n.outcome).observe(n.wait_s)
        elif isinstance(n, TalkNote):
            self.ensure_queue(pbx, n.queue)
            self._child(self.talk, pbx, n.queue).observe(max(0.0, n.talk_s))
        elif isinstance(n, OwedNote):
            self._owed(pbx, n)
        elif isinstance(n, TransferNote):
            if n.queue is not None:  # not a queue call: not ours to count
                self.ensure_queue(pbx, n.queue)
                self._child(self.transfers, pbx, n.queue, n.type).inc()
                if n.first_in_segment:  # "transferred" counts segments, not transfers (ping-pong counts once)
                    self._child(self.calls, pbx, n.queue, "transferred").inc()
        elif isinstance(n, VoicemailNote):
            self.ensure_queue(pbx, n.queue)
            self._child(self.voicemail, pbx, n.queue, n.reason).inc()
        elif isinstance(n, RepeatNote):
            if n.queue is not None:
                self.ensure_queue(pbx, n.queue)
                for w in n.windows:
                    self._child(self.repeats, pbx, n.queue, w).inc()
        elif isinstance(n, SurveyNote):
            self._survey(pbx, n)
        elif isinstance(n, CallClosed):
            if n.record.segments:  # each call once, where it ended (an amended record is not counted again)
                last = n.record.segments[-1].queue
                self.ensure_queue(pbx, last)
                self._child(self.last_queue_calls, pbx, last).inc()
            # Segments closed without an outcome (stream gap, shutdown) never produced a SegmentNote.
            for s in n.record.segments:
                if s.outcome == "unknown" and s.entered:
                    self.ensure_queue(pbx, s.queue)
                    self._child(self.calls, pbx, s.queue, "unknown").inc()

    def _owed(self, pbx: str, n: OwedNote) -> None:
        """An owed callback closed: observe its time to callback under the queue where the call ended."""
        ttc = n.call.time_to_callback_s
        if n.change != "close" or ttc is None or not n.call.queue or n.call.closed_by not in CLOSED_BY:
            return
        self.ensure_queue(pbx, n.call.queue)
        self._child(self.ttc, pbx, n.call.queue, n.call.closed_by).observe(ttc)

    def _survey(self, pbx: str, n: SurveyNote) -> None:
        """Count one survey answer of any source (dialplan UserEvent, AGI, callback), attached to a call or not."""
        queue = n.queue or "unknown"
        self.ensure_queue(pbx, queue)
        self._child(self.survey, pbx, queue, n.result).inc()
        if n.result in ANSWERED_SURVEY and valid_csat(n.csat):
            self._child(self.csat, pbx, queue, str(n.csat)).inc()
        if n.nps is not None and valid_nps(n.nps):
            self._child(self.nps, pbx, queue, nps_bucket(n.nps)).inc()
        if valid_ces(n.ces):
            self._child(self.ces, pbx, queue, str(n.ces)).inc()


