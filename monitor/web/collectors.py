"""What one /metrics scrape reads and how qmon's collectors hand it over: the snapshot taken on the event loop,
the scrape-time families built from it, and qmon's instruments (as the library's families, or as text while the
fast writer of ``monitor.web.exposition`` renders).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor.core.ingest import LiveState
from monitor.core.members import MEMBER_STATES
from monitor.web.exposition import Prerendered, Renderer
from monitor.web.supervisor import agent_families, agent_text, owed_families

_NO_MEMBERS = dict.fromkeys(MEMBER_STATES, 0)


@dataclass(frozen=True, slots=True)
class PbxSnapshot:
    """One PBX's scrape-time state: its live state, the queues with series, the AMI connection's state."""

    live: LiveState
    known_queues: frozenset[str]
    connected: bool
    reconnects: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one scrape's gauges show (daemon clock ``now``, epoch s), taken on the event loop."""

    now: float
    pbxs: dict[str, PbxSnapshot]
    store: Mapping[str, Any] | None
    survey_server: Mapping[str, int] | None = None


#: The snapshot of the scrape being rendered (set around generate_latest; None: collect takes its own).
SNAPSHOT: ContextVar[Snapshot | None] = ContextVar("qmon_metrics_snapshot", default=None)
#: Set while the fast writer renders: qmon's collectors then yield their large families as text.
RENDERER: ContextVar[Renderer | None] = ContextVar("qmon_metrics_renderer", default=None)


class Instruments(Collector):
    """qmon's Counters and Histograms, in creation order: the library's families, or their text while rendering."""

    def __init__(self) -> None:
        self.metrics: list[Counter | Histogram] = []

    def register(self, metric: Counter | Histogram) -> None:
        """Called by the instruments' constructors (``registry=`` this collector)."""
        self.metrics.append(metric)

    def describe(self) -> Iterable[Any]:
        """The instruments' names (for the registry's duplicate check)."""
        for m in self.metrics:
            yield from m.describe()

    def collect(self) -> Iterator[Any]:
        """Every instrument's family."""
        render = RENDERER.get()
        for m in self.metrics:
            if render is None:
                yield from m.collect()
            else:
                yield Prerendered(m._name, (render.instrument(m),))


class StateCollector(Collector):
    """Gauges and source/store counters built from a snapshot of live state at scrape time."""

    def __init__(self, snapshot: Callable[[], Snapshot], started: float) -> None:
        self.snapshot = snapshot  # a fresh snapshot, for a collect() outside a render (get_sample_value, tests)
        self.started = started  # daemon clock at start (epoch s): the last-event age before any event

    def describe(self) -> Iterable[Any]:
        """Nothing up front: the names depend on what is wired (keeps registration cheap)."""
        return []

    def collect(self) -> Iterator[Any]:
        """One consistent snapshot per scrape (the one the scrape took, else a fresh one)."""
        snap = SNAPSHOT.get() or self.snapshot()
        now = snap.now
        waiting = GaugeMetricFamily("qmon_queue_waiting_calls", "Callers waiting in the queue now",
                                    labels=["pbx", "queue"])
        longest = GaugeMetricFamily("qmon_queue_longest_wait_seconds", "Wait of the longest-waiting caller now "
                                    "(0 when nobody waits)", labels=["pbx", "queue"])
        members = GaugeMetricFamily("qmon_queue_members", "Queue members by state", labels=["pbx", "queue", "state"])
        up = GaugeMetricFamily("qmon_ami_up", "1 when logged in to the AMI", labels=["pbx"])
        age = GaugeMetricFamily("qmon_ami_last_event_age_seconds", "Seconds since the last AMI event (since start "
                                "when none yet)", labels=["pbx"])
        open_calls = GaugeMetricFamily("qmon_open_calls", "Calls in progress", labels=["pbx"])
        events = CounterMetricFamily("qmon_ami_events", "AMI events received", labels=["pbx"])
        reconnects = CounterMetricFamily("qmon_ami_reconnects", "AMI reconnections", labels=["pbx"])
        skipped = CounterMetricFamily("qmon_ami_skipped_events", "AMI messages that could not be used",
                                      labels=["pbx", "reason"])
        for name, p in sorted(snap.pbxs.items()):
            st = p.live
            for q in sorted(st.queues | p.known_queues):
                ts = st.waiting.get(q, ())
                waiting.add_metric([name, q], len(ts))
                longest.add_metric([name, q], max(0.0, st.pbx_now - min(ts)) if ts else 0.0)
                for state, count in st.member_counts.get(q, _NO_MEMBERS).items():
                    members.add_metric([name, q, state], count)
            up.add_metric([name], 1.0 if p.connected else 0.0)
            last = st.last_event_at
            age.add_metric([name], max(0.0, now - (last if last is not None else self.started)))
            open_calls.add_metric([name], st.open_calls)
            events.add_metric([name], st.events)
            reconnects.add_metric([name], p.reconnects)
            for reason, count in sorted(st.skipped.items()):
                skipped.add_metric([name, reason], count)
        yield from (waiting, longest, members, up, age, open_calls, events, reconnects, skipped)
        pbxs = sorted(snap.pbxs.items())
        render = RENDERER.get()
        if render is None:
            yield from agent_families([(name, p.live) for name, p in pbxs])
        else:
            yield Prerendered("qmon_agent", agent_text(render, [(name, p.live) for name, p in pbxs]))
        yield from owed_families([(name, p.live, p.live.queues | p.known_queues) for name, p in pbxs])
        yield from _store_families(snap.store)
        if snap.survey_server is not None:
            yield from _survey_server_families(snap.survey_server)


def _survey_server_families(stats: Mapping[str, int]) -> Iterator[Any]:
    yield GaugeMetricFamily("qmon_survey_sessions_in_progress", "FastAGI surveys running now (at most "
                            "survey.max_sessions)", value=float(stats.get("sessions", 0)))
    rejected = CounterMetricFamily("qmon_survey_sessions_rejected", "FastAGI connections turned away: overloaded = "
                                   "max_sessions surveys running, the caller heard qmon's goodbye; no_room = closed "
                                   "at once, the dialplan's goodbye", labels=["reason"])
    for reason in ("overloaded", "no_room"):
        rejected.add_metric([reason], float(stats.get(f"rejected_{reason}", 0)))
    yield rejected
    yield CounterMetricFamily("qmon_survey_idle_connections_dropped", "FastAGI connections that sent no request, "
                              "dropped to make room for new ones", value=float(stats.get("idle_dropped", 0)))
    yield CounterMetricFamily("qmon_survey_accept_errors", "FastAGI accept() failures (EMFILE: out of file "
                              "descriptors)", value=float(stats.get("accept_errors", 0)))


def _store_families(stats: Mapping[str, Any] | None) -> Iterator[Any]:
    dropped = CounterMetricFamily("qmon_store_dropped", "Records not queued for the database (journaled or lost)",
                                  labels=["reason"])
    by_reason: Mapping[str, int] = (stats or {}).get("dropped_by_reason") or {}
    for reason in sorted({"queue_full", *by_reason}):
        dropped.add_metric([reason], by_reason.get(reason, 0))
    yield dropped
    for key, name, doc in (
        ("rejected", "qmon_store_rejected",
         "Records the database refused as they were; stored with free-text fields blanked (original in .rejected)"),
        ("lost", "qmon_store_lost",
         "Records neither in the database nor in the journal (kept in .rejected when there is something to keep)"),
        ("journal_replayed", "qmon_store_journal_replayed", "Records written to the database from the journal file"),
    ):  # present at 0 from the start: an alert on increase() needs the series before the first loss
        yield CounterMetricFamily(name, doc, value=float((stats or {}).get(key, 0)))
    if stats is None:
        return
    for key, name, doc in (("batches", "qmon_store_batches", "Batches written"),
                           ("retries", "qmon_store_retries", "Database write retries"),
                           ("calls_written", "qmon_store_calls_written", "Call records written")):
        if key in stats:
            yield CounterMetricFamily(name, doc, value=float(stats[key]))
    for key, name, doc in (("queue_depth", "qmon_store_queue_depth", "Records waiting for the writer"),
                           ("journal_bytes", "qmon_store_journal_bytes", "Size of the write-ahead journal"),
                           ("journal_lines", "qmon_store_journal_records",
                            "Records journaled but not yet committed to the database"),
                           ("db_up", "qmon_store_up", "1 when the database accepts writes")):
        if key in stats:
            yield GaugeMetricFamily(name, doc, value=float(stats[key]))
