"""The wire parser's second fast path (bulk drop, learnt layouts, the faster pre-read) changes none of its output.

The reference is the same parser with ``fast=False``: the decision loop over every message and the generic subset
parse (monitor/ami/wire.py, monitor/ami/subset.py); the pre-read is checked against its former pattern. Equal
means: the same messages (dicts equal *and* in the same key order; PreReads with the same values, bytes and
headers), the same ``gap_clocks`` after every feed, the same ``dropped_events``, ``unparseable``, ``bad_lines``
and ``oversized`` after every feed, for every capture under any chunking and for generated awkward streams.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import monitor.ami.bulk
import monitor.ami.subset
from monitor.ami.bulk import drop_pattern
from monitor.ami.preread import pre_read
from monitor.ami.selection import tracker_selection
from monitor.ami.subset import Layouts, parse_subset
from monitor.ami.wire import Headers, Selection, WireParser
from monitor.core.normalize import TRACKED_VARIABLES
from monitor.core.preread import LAYOUT, PreRead
from tests.test_wire_fast import ALL, STREAMS, _name, _raw

Snapshot = tuple[object, ...]


@contextmanager
def _eager() -> Iterator[None]:
    """The fast paths from the first message on (a layout learnt at its first miss, the drop pattern rebuilt after
    every dropped message): small and generated streams exercise them fully."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(monitor.ami.subset, "LEARN_AFTER", 1)
        mp.setattr(monitor.ami.bulk, "REBUILD_AFTER", 1)
        yield


def _message(m: Headers | PreRead) -> object:
    if isinstance(m, PreRead):
        return ("pre", m.raw, m.uniqueid, m.application, m.channel, m.caller_num, m.caller_name, m.timestamp,
                m.pattern.pattern, list(m.headers().items()))
    return list(m.items())


def _run(chunks: list[bytes], select: Callable[[], Selection | None], fast: bool,
         banner: bool = True) -> tuple[list[Snapshot], WireParser]:
    p = WireParser(expect_banner=banner, select=select(), fast=fast)
    out = []
    for chunk in chunks:
        msgs = p.feed(chunk)
        out.append(([_message(m) for m in msgs], list(p.gap_clocks), p.dropped_events, p.unparseable, p.bad_lines,
                    p.oversized))
    return out, p


def _chunked(raw: bytes, cuts: list[int]) -> list[bytes]:
    edges = sorted({0, len(raw), *(c % (len(raw) + 1) for c in cuts)})
    return [raw[a:b] for a, b in itertools.pairwise(edges)]


SELECTIONS: dict[str, Callable[[], Selection | None]] = {
    "replay": lambda: tracker_selection(extra=(), gap_clock=True, defer=True),
    "live": lambda: tracker_selection(defer=True),
    "live-no-defer": lambda: tracker_selection(),
    "select-only": lambda: tracker_selection(subset=False),
}


def _same(chunks: list[bytes], select: Callable[[], Selection | None], banner: bool = True) -> WireParser:
    want, _ = _run(chunks, select, fast=False, banner=banner)
    got, p = _run(chunks, select, fast=True, banner=banner)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"feed {i}"
    return p


@pytest.mark.parametrize("path", ALL, ids=_name)
def test_every_capture_gives_the_same_output_under_any_chunking(path: Path) -> None:
    raw = _raw(path)
    rng = random.Random(path.name)
    chunkings = [[raw], _chunked(raw, list(range(65536, len(raw), 65536))), _chunked(raw, rng.sample(
        range(len(raw)), min(40, len(raw))))]
    with _eager():
        for name, select in SELECTIONS.items():
            for chunks in chunkings:
                p = _same(chunks, select)
            if name == "replay" and path in STREAMS:
                assert p._bulk.pattern is not None and p._layouts._count > 0  # the fast paths did run
        _same(_chunked(raw, list(range(997, len(raw), 997))), SELECTIONS["replay"])


def test_all_captures_in_one_stream_at_the_default_thresholds() -> None:
    """One long stream, as the benchmark's: the pattern built and the layouts learnt when they pay, as in use."""
    raw = b"".join(_raw(p) if i == 0 else _raw(p).split(b"\r\n", 1)[1] for i, p in enumerate(STREAMS))
    for select in (SELECTIONS["replay"], SELECTIONS["live"]):
        p = _same(_chunked(raw, list(range(65536, len(raw), 65536))), select)
        assert p._bulk.pattern is not None and p._layouts._count >= 10
        _same(_chunked(raw, random.Random(7).sample(range(len(raw)), 300)), select)


# -- generated awkward streams -------------------------------------------------------------------------------

_HEADS = ["Event: Newstate", "Event: Hangup", "Event: VarSet", "Event: Newexten", "Event: Cdr", "Event: DialBegin",
          "Response: Success", "Event: New state", "Event:Newstate", "Event: Newstate ", "event: Cdr", "",
          "Event: ActionIDEvent", "Event: QueueMemberStatus"]
_LINES = ["Privilege: call,all", "Timestamp: 1700000000.5", "Timestamp: soon", "Channel: PJSIP/a-1",
          "Uniqueid: 1.1", "Linkedid: 1.0", "CallerIDName: Victor", "Variable: QUEUESTATUS", "Variable: __queuestatus",
          "Variable: VmStatus", "Variable: FOO", "Variable: __FOO_1", "Variable: FOOVariable", "Variable: FOO ",
          "Variable:FOO", "Variable: caf\u00e9", "ChanVariable: X", "Value: x", "Value: Variable", "Value: VM",
          "ActionID: 7", "X: ActionID", "Cause: 16", "Cause-txt: Normal", " Uniqueid: 2", "Uniqueid : 3",
          "AccountCode: ", "AppData: a\rb", "Context: caf\u00e9", "Exten: 1 ", "Queue: support", "garbage", "",
          "Application: Queue", "Application: Playback", "Interface: PJSIP/agent1", "Status: 1", "Paused: 0"]
_ENDS = ["\r\n"] * 12 + ["\n", "\r\r\n"]
_SEPS = ["\r\n\r\n"] * 12 + ["\n\n", "\r\n\r\n\r\n"]

_message_text = st.builds(
    lambda head, lines, ends: head + "".join(e + line for e, line in zip(ends, lines, strict=False)),
    st.sampled_from(_HEADS), st.lists(st.sampled_from(_LINES), max_size=10),
    st.lists(st.sampled_from(_ENDS), min_size=10, max_size=10))


_VARSET_LINES = ["Channel: PJSIP/a-1", "CallerIDName: Victor", "Uniqueid: 1.1", "Variable: FOO", "Variable: __FOO_1",
                 "Variable: QUEUESTATUS", "Variable: _vmstatus", "Variable: FOOVariable", "Variable: FOO ",
                 "Value: x", "Value: Variable", "Value: VM", "Value: ", "ChanVariable: X", "ActionID: 1"]
_varset_text = st.builds(lambda lines, ends: "Event: VarSet" + "".join(e + line for e, line in zip(ends, lines,
                                                                                                  strict=False)),
                         st.lists(st.sampled_from(_VARSET_LINES), max_size=5),
                         st.lists(st.sampled_from(_ENDS), min_size=5, max_size=5))


def _warm_up(n: int) -> bytes:
    """Plain messages that fill the loop's caches and the layouts, so the fast paths judge what follows."""
    newexten = ("Event: Newexten\r\n" + "\r\n".join(f"{k}: {'1.5' if k == 'Timestamp' else 'x'}"
                                                     for k in LAYOUT[1:]))
    plain = ["Event: Newstate\r\nPrivilege: call,all\r\nTimestamp: 1.5\r\nUniqueid: 1",
             "Event: Cdr\r\nTimestamp: 2.5\r\nAccountCode: ",
             "Event: VarSet\r\nChannel: a\r\nVariable: FOO\r\nValue: 1",
             "Event: VarSet\r\nChannel: a\r\nVariable: __FOO_1\r\nValue: 1",
             "Event: Hangup\r\nTimestamp: 3.5\r\nUniqueid: 1.1\r\nCause: 16\r\nCause-txt: Normal", newexten]
    return "".join(m + "\r\n\r\n" for m in plain * n).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.one_of(_message_text, _varset_text), st.sampled_from(_SEPS)), max_size=30),
       st.lists(st.integers(min_value=0, max_value=1 << 14), max_size=8), st.booleans())
def test_generated_awkward_streams_give_the_same_output(messages: list[tuple[str, str]], cuts: list[int],
                                                        latin1: bool) -> None:
    body = "".join(m + sep for m, sep in messages)
    raw = body.encode("latin-1", "replace") if latin1 else body.encode()
    with _eager():
        for select in SELECTIONS.values():  # the warm-up fed first: the fast paths judge what follows
            _same([_warm_up(2), *_chunked(raw, cuts)], select, banner=False)


def test_past_the_first_line_cache_bound_as_the_loop() -> None:
    """Over 1024 distinct first lines the loop stops caching, and a kept event first seen after that is parsed
    whole: the bulk drop must leave the cache to the loop (it drops only first lines the loop has cached)."""
    junk = b"".join(b"Event: Junk%d\r\nTimestamp: 1.5\r\n\r\n" % (i % 1100) for i in range(3000))
    late = (b"Event: QueueCallerJoin\r\nPrivilege: agent,all\r\nTimestamp: 2.5\r\nQueue: q\r\nUniqueid: 1\r\n"
            b"Position: 1\r\n\r\n") * 40
    raw = junk + late + junk[:5000] + _warm_up(40)
    for select in SELECTIONS.values():
        for step in (len(raw), 65536, 4096):
            got = _same([_warm_up(40), *(raw[i:i + step] for i in range(0, len(raw), step))], select, banner=False)
        assert got._bulk.pattern is not None
        with _eager():
            _same([_warm_up(2), *(raw[i:i + 4096] for i in range(0, len(raw), 4096))], select, banner=False)


# -- the parts, one at a time ---------------------------------------------------------------------------------

_VARSETS = [  # (message, dropped by the loop once FOO and VarSet are known)
    (b"Event: VarSet\r\nChannel: a\r\nVariable: FOO\r\nValue: 1", True),
    (b"Event: VarSet\r\nVariable: FOO", True),
    (b"Event: VarSet\r\nVariable: FOO\r\nValue: 1\r\nActionID: 3", True),         # a VarSet: ActionID not looked at
    (b"Event: VarSet\r\nCallerIDName: Victor\r\nVariable: FOO\r\nValue: 1", True),  # a V before: loop decides (drop)
    (b"Event: VarSet\r\nChannel: a\r\nVariable: FOO\r\nValue: Variable", False),     # "Variable" twice
    (b"Event: VarSet\r\nChanVariable: X\r\nVariable: FOO\r\nValue: 1", False),
    (b"Event: VarSet\r\nVariable: FOO\r\nVariable: FOO", False),
    (b"Event: VarSet\r\nChannel: a\nVariable: FOO\r\nValue: 1", False),            # bare LF before it
    (b"Event: VarSet\r\nVariable: FOO \r\nValue: 1", True),                         # loop: dropped (FOO), new name
    (b"Event: VarSet\r\nVariable: QUEUESTATUS\r\nValue: 1", False),
    (b"Event: VarSet\r\nValue: 1", False),
    (b"Event: Newstate\r\nUniqueid: 1", True),
    (b"Event: Newstate", True),
    (b"Event: Newstate\r\nUniqueid: 1\r\nActionID: 2", False),
    (b"Event: Newstate\r\nX: 1ActionID", False),
    (b"Event: Newstate \r\nUniqueid: 1", False),
    (b"Event: Hangup\r\nUniqueid: 1", False),
]


@pytest.mark.parametrize(("raw", "dropped"), _VARSETS)
def test_the_drop_pattern_matches_only_what_the_loop_drops(raw: bytes, dropped: bool) -> None:
    p = WireParser(expect_banner=False, select=Selection({"Hangup", "VarSet"}, TRACKED_VARIABLES), fast=False)
    p.feed(b"Event: Newstate\r\n\r\nEvent: VarSet\r\nVariable: FOO\r\n\r\n")  # the loop's caches, as in use
    pattern = drop_pattern([b"Newstate"], [b"FOO"])
    assert pattern is not None
    before = p.dropped_events
    p.feed(raw + b"\r\n\r\n")
    assert (p.dropped_events - before == 1) == dropped
    if pattern.match(raw):
        assert dropped
    assert drop_pattern([b"Newstate"], None) is not None and drop_pattern([], None) is None
    assert drop_pattern([b"New state", b"XActionID"], None) is None  # never names the loop would not drop


_LAYOUT_KEYS = frozenset({"Event", "Timestamp", "Uniqueid", "Cause", "Queue", "Exten"})


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["", "", "", "", " ", "\t", "\x1c"]),
                          st.sampled_from([*sorted(_LAYOUT_KEYS), "Other", "Cause-txt", "A:B", "Queue2"]),
                          st.sampled_from([": ", ": ", ": ", ":", " : ", ":  ", ":\t"]),
                          st.text(alphabet="ab :V\t\r\n\xe9\xa0", max_size=4),
                          st.sampled_from(["\r\n"] * 8 + ["\n", "\r\r\n", "\r"])), max_size=8), st.booleans())
def test_a_learnt_layout_reads_what_the_generic_parse_reads(lines: list[tuple[str, ...]], latin1: bool) -> None:
    text = "Event: Hangup" + "".join(end + "".join(parts) for *parts, end in lines)
    raw = text.encode("latin-1") if latin1 else text.encode()
    pattern = Selection({"Hangup"}, headers={"Hangup": _LAYOUT_KEYS}).pattern(b"Event: Hangup")
    assert pattern is not None
    layouts = Layouts({"Hangup": _LAYOUT_KEYS})
    with _eager():
        for _ in range(2):  # learnt at the first miss (if plain), then read by the layout
            got = layouts.parse(raw, b"Event: Hangup")
            assert got is None or list(got.items()) == list(parse_subset(raw, pattern).items())


def test_a_layout_is_learnt_once_and_values_it_cannot_read_go_to_the_generic_parse() -> None:
    keys = frozenset({"Event", "Timestamp", "Uniqueid", "Cause"})
    layouts = Layouts({"Hangup": keys})
    pattern = Selection({"Hangup"}, headers={"Hangup": keys}).pattern(b"Event: Hangup")
    assert pattern is not None
    plain = b"Event: Hangup\r\nPrivilege: call,all\r\nTimestamp: 1.5\r\nUniqueid: 1.1\r\nCause: 16"
    spaced = plain.replace(b"Cause: 16", b"Cause: 16 ")  # the generic parse strips it: the layout gives way
    got = [layouts.parse(raw, b"Event: Hangup") for raw in [plain] * 40 + [spaced] * 100 + [plain]]
    assert got[:31] == [None] * 31 and got[31] == got[-1] == parse_subset(plain, pattern)
    assert got[40:140] == [None] * 100 and layouts._count == 1  # never learnt twice
    assert parse_subset(spaced, pattern) == parse_subset(plain, pattern)


#: The pre-read pattern before it scanned values with [^\r] (and counted line feeds instead).
_V = rb"((?:[^\r\n]*+(?<![\s\x1c-\x1f\x80-\xff]))?)\r\n"
_O = rb"[^\r\n]*+\r\n"
_READ = ("Timestamp", "Channel", "CallerIDNum", "CallerIDName", "Uniqueid", "Application")
_OLD_NEWEXTEN = re.compile(b"Event: Newexten\r\n" + b"".join(
    k.encode() + b": " + (_V if k in _READ else _O) for k in LAYOUT[1:-1]) + b"AppData: [^\r\n]*+")


def _old_pre_read(raw: bytes) -> tuple[object, ...] | None:
    m = _OLD_NEWEXTEN.fullmatch(raw)
    if m is None or not m.group(5):
        return None
    try:
        clock = float(m.group(1))
    except ValueError:
        return None
    return (m.group(5).decode("utf-8", "replace"), m.group(6).decode("utf-8", "replace"),
            m.group(2).decode("utf-8", "replace"), m.group(3).decode("utf-8", "replace"),
            m.group(4).decode("utf-8", "replace"), clock)


def _pre_read(raw: bytes) -> tuple[object, ...] | None:
    pattern = re.compile("")
    pre = pre_read(raw, pattern, lambda raw, p: {})
    return None if pre is None else (pre.uniqueid, pre.application, pre.channel, pre.caller_num, pre.caller_name,
                                     pre.timestamp)


_NEWEXTEN = ("Event: Newexten\r\n" + "\r\n".join(f"{k}: {{{k}}}" for k in LAYOUT[1:])).encode()
_VALUES = ["", "x", "1.5", "a b", "a\nb", "a\rb", "x ", "x\n", "\n", "caf\u00e9", "\u00e9x", "x\x1f", "\t", "\xff"]


def test_pre_read_takes_exactly_what_it_took_on_every_capture() -> None:
    n = 0
    for path in STREAMS:
        for raw in _raw(path).split(b"\r\n\r\n"):
            if raw.startswith(b"Event: Newexten\r\n"):
                assert _pre_read(raw) == _old_pre_read(raw)
                n += _old_pre_read(raw) is not None
    assert n > 2000


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from(LAYOUT[1:]), st.sampled_from(_VALUES)), st.booleans())
def test_pre_read_takes_exactly_what_it_took_on_generated_values(values: dict[str, str], latin1: bool) -> None:
    fields = {k: values.get(k, "1.5" if k == "Timestamp" else "x") for k in LAYOUT[1:]}
    raw = _NEWEXTEN.decode().format(**fields).encode("latin-1" if latin1 else "utf-8")
    assert _pre_read(raw) == _old_pre_read(raw)
