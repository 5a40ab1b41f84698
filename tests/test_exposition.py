"""The fast /metrics writer (monitor/web/exposition.py) writes byte for byte what prometheus-client's
generate_latest writes: on full scrapes of metrics fed every recorded capture plus 200 queues x 50 members, while
the clock moves and counters change, and on generated families with awkward labels and values."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    StateSetMetricFamily,
    SummaryMetricFamily,
    UnknownMetricFamily,
)
from prometheus_client.metrics_core import Metric

from monitor.ami.files import read_capture
from monitor.ami.wire import WireParser
from monitor.core.agentcols import agent_columns, columns_of_rows
from monitor.core.ingest import Ingest
from monitor.core.records import SegmentNote, TalkNote
from monitor.core.tracker import CallTracker, TrackerConfig
from monitor.web import agenttext
from monitor.web.exposition import ObservedHistogram, Renderer, library_text
from monitor.web.gofloat import go_texts, value_text
from monitor.web.metrics import QmonMetrics
from monitor.web.supervisor import agent_families, agent_text
from tests.support.factcheck import FIXTURES

CAPTURES = sorted(p for p in Path(FIXTURES).glob("*.jsonl") if not p.name.endswith(".actions.jsonl"))


def _members(queues: int, agents: int) -> bytes:
    """QueueMemberAdded for every (queue, agent), some paused with a reason (configured or not), some in use."""
    reasons = ("", "lunch", "Kaffee \"schwarz\"", "back\\slash")
    return b"".join(
        f"Event: QueueMemberAdded\r\nQueue: q{q}\r\nMemberName: a{a}\r\nInterface: PJSIP/{q}-{a}\r\n"
        f"StateInterface: PJSIP/{q}-{a}\r\nMembership: dynamic\r\nPenalty: 0\r\nCallsTaken: 0\r\nLastCall: 0\r\n"
        f"LastPause: 0\r\nInCall: 0\r\nStatus: {1 + a % 3}\r\nPaused: {int(a % 4 == 0)}\r\n"
        f"PausedReason: {reasons[a % 4 and (q + a) % 4]}\r\n\r\n".encode()
        for q in range(queues) for a in range(agents))


@contextlib.contextmanager
def _created(on: bool) -> Iterator[None]:
    """prometheus-client's ``*_created`` series on or off (process-wide: the daemon turns them off, and only then
    are the instruments read by the fast path; restored after)."""
    before = prometheus_metrics._use_created
    prometheus_metrics._use_created = on
    try:
        yield
    finally:
        prometheus_metrics._use_created = before


class _Static:
    """A collector of fixed families (the standard collectors' values move between two renders)."""

    def __init__(self, *families: Metric) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return list(self.families)


def _daemon_metrics() -> tuple[QmonMetrics, list[Ingest]]:
    build = GaugeMetricFamily("qmon_build_info", "qmon version (value is always 1)", labels=["version"])
    build.add_metric(["0.1.0"], 1.0)
    reg = CollectorRegistry(auto_describe=True)
    reg.register(_Static(build))
    m = QmonMetrics(reg, queues=("support", "sales"), repeat_windows=("24h", "7d"), clock=lambda: 1.8e9)
    ingests = []
    for path in CAPTURES:  # every capture as a PBX of its own (one tracker each: their ids overlap)
        ing = Ingest(CallTracker(TrackerConfig(pause_reasons=("lunch",))), [m.sink(path.stem)], path.stem)
        for headers, _ in read_capture(path):
            ing.feed(headers, 1.8e9)
        m.add_pbx(path.stem, ing)
        ingests.append(ing)
    big = Ingest(CallTracker(TrackerConfig(pause_reasons=("lunch",))), [m.sink("big")], "big")
    for h in WireParser(expect_banner=False).feed(_members(200, 50)):
        big.feed(h, 1.8e9)
    m.add_pbx("big", big)
    return m, [*ingests, big]


@pytest.mark.parametrize("created", [False, True])
def test_full_scrapes_equal_generate_latest_while_time_moves_and_counters_change(created: bool) -> None:
    with _created(created):
        _full_scrapes()


def _full_scrapes() -> None:
    m, ingests = _daemon_metrics()
    assert len(CAPTURES) >= 15
    big = ingests[-1]
    for step in range(4):
        snap = m.snapshot()
        fast = m.render(snap)
        ref = m.expose_reference(snap)
        assert fast == ref, f"scrape {step} differs"
        assert fast.count(b"\n") > 250_000 and b'reason="other"' in fast and b"qmon_agent_occupancy{" in fast
        # Time moves (every logged-in member's seconds), a queue gets calls, a member pauses: the next scrape's
        # columns change in part and in whole.
        big.tracker.agents.hold(1.8e9 + 7.25 * (step + 1))
        m.sink("big")([SegmentNote("q7", "answered", 12.5 + step, "a1", 0.0), TalkNote("q7", "a1", 95.0, "agent", 0.0)])
        m.calls.labels("big", f"new{step}", "answered").inc()  # a series created between scrapes
        big.tracker.agents.pause("q3", "a1", "lunch", 1.8e9 + 7.25 * (step + 1))
        late = _members(1, 1).replace(b"q0", f"q{step}".encode()).replace(b"a0", f"late{step}".encode())
        for h in WireParser(expect_banner=False).feed(late):  # a member joins: its rows among the others'
            big.feed(h, 1.8e9)
    assert asyncio.run(m.expose_async(slice_s=0.0)) == m.expose_reference()


@pytest.mark.parametrize("rows", [agenttext.ROWS, 7])
def test_one_pbx_scrapes_equal_generate_latest(rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """One PBX (the daemon's usual case: its columns are read in C), members joining, pausing, calling, a row that
    never logged in, durations of 0 and of Go's exponent form, while the clock moves; the instruments as the daemon
    has them (no ``*_created`` series: read by the fast path). With blocks of 7 members, the joiners make blocks
    grow past twice that: the blocks are laid out again."""
    monkeypatch.setattr(agenttext, "ROWS", rows)
    with _created(False):
        _one_pbx_scrapes()


def _one_pbx_scrapes() -> None:
    m = QmonMetrics(queues=("q0", "q1"), clock=lambda: 1.8e9)
    ing = Ingest(CallTracker(TrackerConfig(pause_reasons=("lunch",))), [m.sink("big")], "big")
    for h in WireParser(expect_banner=False).feed(_members(40, 25)):
        ing.feed(h, 1.8e9)
    m.add_pbx("big", ing)
    board = ing.tracker.agents
    board.ring_no_answer("q9", "never", 1.8e9)  # a row never logged in: no since, duration or occupancy series
    for step in range(6):
        at = 1.8e9 + (0.0 if step == 1 else 1.7e6 * step + 0.123)  # step 1: every duration 0
        board.hold(at)
        if step % 2:
            board.pause("q3", "a1", "lunch", at)
            board.connect("q5", "a2", at)
            # Members join a queue and new queues (as many as a block of 7 holds and more: laid out again).
            late = b"".join(_members(1, 1).replace(b"q0", (f"q{step}" if i % 2 else f"q{step}-{i}").encode())
                            .replace(b"a0", f"late{i}".encode()) for i in range(3 * step))
            for h in WireParser(expect_banner=False).feed(late):
                ing.feed(h, at)
        m.sink("big")([SegmentNote("q1", "answered", 3.5 * step, "a1", at),
                       TalkNote("q1", "a1", 60.0 + step, "agent", at)])
        snap = m.snapshot()
        assert m.render(snap) == m.expose_reference(snap), step
    assert asyncio.run(m.expose_async(slice_s=0.0)) == m.expose_reference()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 40), max_size=30), st.integers(1, 20), st.lists(st.integers(0, 60), max_size=5))
def test_agent_blocks_start_at_a_queue_and_cover_every_row(sizes: list[int], rows: int, grow: list[int]) -> None:
    render = Renderer()
    queue = sorted(f"q{i:02d}" for i, n in enumerate(sizes) for _ in range(n))
    old = agenttext.ROWS
    agenttext.ROWS = rows
    try:
        for more in [0, *grow]:  # members join (queues of their own too): blocks kept, or laid out again
            queue = sorted([*queue, *(f"q{more % 7:02d}x" for _ in range(more % 5)), *([f"q{more:02d}"] * more)])
            blocks = agenttext._blocks(render, ["p"], [len(queue)], queue)
            assert blocks[0][1] == 0 and blocks[-1][2] == len(queue)
            assert all(e == s2 for (_, _, e), (_, s2, _) in itertools.pairwise(blocks))
            assert all(s == 0 or queue[s - 1] != queue[s] for _, s, _ in blocks)  # a block starts a queue
            assert all(e - s <= 2 * rows or queue[s] == queue[e - 1] for _, s, e in blocks)
    finally:
        agenttext.ROWS = old


def test_agent_text_of_odd_columns_is_agent_families() -> None:
    """A state begun after the columns' time (duration clipped to 0), a NaN, a -0.0 timestamp (board values are
    never a -0.0: only ``since`` is written as signed)."""
    m, _ = _daemon_metrics()
    st = m.snapshot().pbxs["big"].live
    assert st.agent_columns is not None
    c = replace(st.agent_columns)
    c.since = [t + 5.0 if i % 7 == 0 and t is not None else t for i, t in enumerate(c.since)]
    c.since[5] = -0.0
    c.talk_s = [math.nan if i == 3 else v for i, v in enumerate(c.talk_s)]
    odd = replace(st, agent_columns=c)
    for live in (st, odd, odd):
        want = b"".join(library_text(f) for f in agent_families([("big", live)]))
        assert b"".join(agent_text(m.renderer, [("big", live)])) == want


def test_agent_columns_are_the_snapshot_rows() -> None:
    _, ingests = _daemon_metrics()
    for ing in ingests[-3:]:
        board = ing.tracker.agents
        at = board.floor + 3.5
        assert agent_columns(board, at) == columns_of_rows(board.snapshot(at), at)


def test_agent_families_of_rows_and_of_columns_render_alike() -> None:
    m, ingests = _daemon_metrics()
    snap = m.snapshot()
    st = snap.pbxs["big"].live
    rows = ingests[-1].live(1.8e9)  # with views: rows, no columns
    assert rows.agent_columns is None and st.agent_columns is not None and rows.agents
    by_rows = "".join(library_text(f).decode() for f in agent_families([("big", rows)]))
    by_cols = "".join(library_text(f).decode() for f in agent_families([("big", st)]))
    assert by_rows == by_cols


# -- generated families ------------------------------------------------------------------------------------------

AWKWARD = st.lists(st.sampled_from([*'ab\\"\n{}=,é€😀 \t.', "\\n", '\\"']), max_size=8).map("".join)
LABEL_NAMES = st.sampled_from(["a", "b", "le_x", "queue", "x1", "_u"])
SPECIAL = [0.0, -0.0, 1.0, -1.0, math.nan, math.inf, -math.inf, 1e6, 999999.9, 1e16, 1.7e9, 1e-7, 5e-324,
           1.7976931348623157e308, 123456789.125, -123456789.125]
VALUES = st.one_of(st.sampled_from(SPECIAL), st.floats(allow_nan=True, allow_infinity=True),
                   st.integers(min_value=-(2**70), max_value=2**70), st.booleans())
FINITE = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)


@st.composite
def families(draw: st.DrawFn) -> list[Metric]:
    out: list[Metric] = []
    for i in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["gauge", "counter", "untyped", "summary", "histogram", "info", "stateset"]))
        name = f"fam{i}_{kind}"
        doc = draw(AWKWARD)
        names = draw(st.lists(LABEL_NAMES, max_size=3, unique=True))
        rows = draw(st.lists(st.tuples(st.lists(AWKWARD, min_size=len(names), max_size=len(names)), VALUES),
                             max_size=6))
        if kind in ("gauge", "counter", "untyped"):
            cls = {"gauge": GaugeMetricFamily, "counter": CounterMetricFamily, "untyped": UnknownMetricFamily}[kind]
            fam = cls(name, doc, labels=names)
            for labels, v in rows:
                fam.add_metric(labels, v)
        elif kind == "summary":
            fam = SummaryMetricFamily(name, doc, labels=names)
            for labels, v in rows:
                fam.add_metric(labels, count_value=abs(draw(FINITE)), sum_value=v)
        elif kind == "histogram":
            fam = HistogramMetricFamily(name, doc, labels=names)
            for labels, v in rows:
                fam.add_metric(labels, [("0.5", 1.0), ("10.0", draw(FINITE)), ("+Inf", 3.0)], sum_value=v)
        elif kind == "info":
            fam = InfoMetricFamily(name, doc, labels=names)
            for labels, _ in rows:
                fam.add_metric(labels, {"version": draw(AWKWARD)})
        else:
            fam = StateSetMetricFamily(name, doc, labels=names)
            for labels, v in rows:
                fam.add_metric(labels, {"on": bool(v == v and v), "off": not (v == v and v)})
        out.append(fam)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(families())
def test_generated_families_render_as_generate_latest(fams: list[Metric]) -> None:
    reg = CollectorRegistry()
    reg.register(_Static(*fams))
    render = Renderer()
    want = generate_latest(reg)
    assert render.render(reg.collect()) == want
    assert render.render(reg.collect()) == want  # the second time through the caches


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(VALUES, VALUES), max_size=40), st.booleans())
def test_columns_re_render_only_what_changed_and_stay_exact(pairs: list[tuple[Any, Any]], same_prefixes: bool) -> None:
    render = Renderer()
    prefixes = [f'm{{i="{i}"}} ' for i in range(len(pairs))]
    before, after = [a for a, _ in pairs], [b for _, b in pairs]

    def want(values: list[Any]) -> bytes:
        return "".join(p + value_text(v) for p, v in zip(prefixes, values, strict=True)).encode()

    assert render.column("k", prefixes, before) == want(before)
    again = prefixes if same_prefixes else list(prefixes)
    assert render.column("k", again, after) == want(after)  # only the changed values formatted again


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(AWKWARD, st.lists(FINITE | st.sampled_from([0.0, -0.0, 1e6, 3.5e9]), max_size=4),
                          st.booleans()), max_size=6), st.sampled_from([Histogram, ObservedHistogram]), st.booleans())
def test_library_instruments_render_as_generate_latest(series: list[tuple[str, list[float], bool]],
                                                       kind: type[Histogram], created: bool) -> None:
    with _created(created):
        _instruments(series, kind)


def _instruments(series: list[tuple[str, list[float], bool]], kind: type[Histogram]) -> None:
    reg = CollectorRegistry()
    c = Counter("gen_counter", "a counter \\ with\nnewline", ["who"], registry=reg)
    h = kind("gen_hist", "a histogram", ["who"], buckets=(0.5, 10.0, 1e6), registry=reg)
    render = Renderer()

    def fast() -> bytes:
        return render.instrument(c) + render.instrument(h)

    for who, amounts, again in series:
        if again and (who,) in h._metrics:  # the series removed and made again: observed from 0
            h.remove(who)
        for a in amounts:
            c.labels(who).inc(abs(a))
            h.labels(who).observe(a)
        assert fast() == generate_latest(reg)
    assert fast() == generate_latest(reg)


def test_a_histogram_series_made_again_with_as_many_observations_is_read_again() -> None:
    with _created(False):
        reg = CollectorRegistry()
        h = ObservedHistogram("gen_hist", "a histogram", ["who"], buckets=(0.5, 10.0), registry=reg)
        render = Renderer()
        for amounts in ([0.0, 0.0, 1.0], [0.0, 0.0, 0.0]):  # the same count of observations, other values
            if ("a",) in h._metrics:
                h.remove("a")
            for a in amounts:
                h.labels("a").observe(a)
            assert render.instrument(h) == generate_latest(reg)


def test_value_text_is_float_to_go_string() -> None:
    from prometheus_client.utils import floatToGoString

    for v in [*SPECIAL, 0, 7, True, 2**60 + 1, 10**17, 1e15 + 0.5, 9.999999999999998e15, 1234567.0, "2.5"]:
        assert value_text(v) == floatToGoString(v) + "\n", v


# Floats of every decade around Go's switch to exponents (1e6) and Python's (1e16), integral or not, with trailing
# zeros in the digits, negative, subnormal: what durations since an epoch timestamp look like, and worse.
DECADES = st.one_of(
    st.builds(lambda m, e: m * 10.0 ** e, st.floats(min_value=1.0, max_value=9.999999999999998), st.integers(-8, 18)),
    st.builds(lambda i, e: float(i * 10 ** e), st.integers(1, 10**6), st.integers(0, 12)),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([x for x in SPECIAL if math.isfinite(x)]))


@settings(max_examples=500, deadline=None)
@given(st.lists(DECADES, min_size=1, max_size=60))
def test_column_formatting_of_floats_is_float_to_go_string(values: list[float]) -> None:
    from prometheus_client.utils import floatToGoString

    want = [floatToGoString(v) + "\n" for v in values]
    got = go_texts(values)
    assert got == want or (got is None and max(map(abs, values)) > 1e300)  # a sum that overflows: the slow path
    one_decade = [3.4647e6 + v % 1000 for v in values]  # a column of durations: one decade, formatted at once
    assert go_texts(one_decade) == [floatToGoString(v) + "\n" for v in one_decade]
    # ... and among values below 1e6 (durations of the day, zeros, negative, tiny: put back as they are)
    pairs = enumerate(zip(values, one_decade, strict=True))
    mixed = [w if i % 3 else (v % 1e6 if i % 2 else -v % 7.5) for i, (v, w) in pairs]
    mixed += [0.0, -0.0, 1e-7, 999999.9999999999, -1e300, 1e-300]
    assert go_texts(mixed) == [floatToGoString(v) + "\n" for v in mixed]


def test_column_formatting_leaves_what_is_not_a_finite_float_to_the_slow_path() -> None:
    for values in ([1.0, math.nan], [math.inf], [1e308, 1e308], [1.0, 2], [True], []):
        assert go_texts(values) is None, values


@settings(max_examples=200, deadline=None)
@given(st.lists(DECADES, min_size=1, max_size=40), st.data())
def test_moved_columns_of_large_floats_stay_exact(values: list[float], data: st.DataObject) -> None:
    render = Renderer()
    prefixes = tuple(f'm{{i="{i}"}} ' for i in range(len(values)))
    for _ in range(3):  # some values move (a few: only they are formatted again; most: all are)
        moved = data.draw(st.lists(st.integers(0, len(values) - 1), max_size=len(values)))
        values = list(values)
        for i in moved:
            values[i] = data.draw(DECADES)
        want = "".join(p + value_text(v) for p, v in zip(prefixes, values, strict=True)).encode()
        assert render.column("k", prefixes, values) == want


def _families_of(text: bytes) -> Iterator[str]:
    return (line.split()[2] for line in text.decode().splitlines() if line.startswith("# TYPE"))


def test_the_series_names_are_unchanged_by_the_fast_writer() -> None:
    m, _ = _daemon_metrics()
    assert list(_families_of(m.expose())) == list(_families_of(m.expose_reference()))
