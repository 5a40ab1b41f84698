"""The wire parser's fast path (selection + fast framing/parsing) changes nothing qmon reports or records."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.ami.selection import headers_read, tracker_selection
from monitor.ami.subset import parse_subset as _parse_subset
from monitor.ami.wire import Headers, Selection, WireParser
from monitor.core import events as ev
from monitor.core.ingest import Ingest, closed_records, merge_records
from monitor.core.normalize import TRACKED_VARIABLES, normalize
from monitor.core.preread import PreRead
from monitor.core.records import CallRecord
from monitor.core.tracker import CallTracker, TrackerConfig
from monitor.replay import UnsupportedStream, replay_files
from tests.support.factcheck import FIXTURES


def _name(p: Path) -> str:
    return str(p.relative_to(FIXTURES))


def _raw(p: Path) -> bytes:
    data = p.read_bytes()
    return gzip.decompress(data) if p.suffix == ".gz" else data


def _captures() -> list[Path]:
    """Every ``.ami`` / ``.ami.gz`` under tests/fixtures (ast22, ast20, field, live22, agents, ami22, transcripts
    ...), each distinct content once (several sets hold copies of the same recording)."""
    seen: set[bytes] = set()
    out: list[Path] = []
    for p in sorted(FIXTURES.rglob("*.ami")) + sorted(FIXTURES.rglob("*.ami.gz")):
        digest = hashlib.sha256(_raw(p)).digest()
        if digest not in seen:
            seen.add(digest)
            out.append(p)
    return out


ALL = _captures()
#: Asterisk 11 recordings (AMI 1.x events): both paths must refuse them alike (tested apart).
OLD = [p for p in ALL if b"Event: Join\r\n" in _raw(p)]
CAPTURES = [p for p in ALL if p not in OLD]


#: The captures of call streams (not the answer to one action, such as the recorded QueueStatus list).
STREAMS = [p for p in CAPTURES if b"Event: Newchannel" in _raw(p)]


def test_every_transcript_set_is_there() -> None:
    names = {_name(p).split("/")[0] for p in CAPTURES}
    assert {"ast22", "ast20", "field", "live22", "agents", "ami22"} <= names
    assert (len(ALL), len(CAPTURES), len(STREAMS), len(OLD)) == (63, 62, 61, 1)


@pytest.mark.parametrize("path", OLD, ids=_name)
def test_fast_replay_refuses_an_asterisk_11_stream_like_the_full_parse(path: Path) -> None:
    errors = []
    for fast in (False, True):
        with pytest.raises(UnsupportedStream) as exc:
            replay_files([path], fast=fast)
        errors.append(str(exc.value))
    assert errors[0] == errors[1] and "Asterisk 11 or older" in errors[0]


@pytest.mark.parametrize("path", CAPTURES, ids=_name)
def test_fast_replay_same_report_and_records(path: Path) -> None:
    full, fast = replay_files([path], fast=False), replay_files([path], fast=True)
    assert fast.events == full.events > 0
    assert fast.skipped == full.skipped
    assert fast.report() == full.report()
    assert [r.to_dict() for r in fast.records] == [r.to_dict() for r in full.records]


def test_fast_replay_of_all_captures_in_one_tracker() -> None:
    full, fast = replay_files(CAPTURES, fast=False), replay_files(CAPTURES, fast=True)
    assert fast.report() == full.report() and len(full.records) > 50
    assert [r.to_dict() for r in fast.records] == [r.to_dict() for r in full.records]


def _tracker_uses(h: Headers) -> bool:
    """What the selection must keep: whatever normalises to an event or a counted skip, and every response."""
    return "Event" not in h or normalize(h) is not None


@pytest.mark.parametrize("path", STREAMS[::5], ids=_name)
def test_selection_keeps_exactly_what_the_tracker_uses_under_any_chunking(path: Path) -> None:
    raw = _raw(path)
    everything = WireParser().feed(raw)
    want = [h for h in everything if _tracker_uses(h) or "ActionID" in h]
    rng = random.Random(path.name)
    for mode in ("whole", "random"):
        p = WireParser(select=tracker_selection(extra=()))
        got: list[Headers] = []
        i = 0
        while i < len(raw):
            n = len(raw) if mode == "whole" else rng.randint(1, 3000)
            got.extend(p.feed(raw[i:i + n]))
            i += n
        assert len(got) == len(want), mode
        for g, w in zip(got, want, strict=True):
            # Subset-parsed events carry the headers the normaliser reads: what it makes of them is the same.
            assert (g.get("Event"), g.get("Timestamp"), normalize(g)) == (w.get("Event"), w.get("Timestamp"),
                                                                          normalize(w)), w
        assert p.dropped_events == sum(1 for h in everything if "Event" in h) - sum(1 for h in want if "Event" in h)
        assert p.dropped_events > len(want)  # the point: most of the stream is never parsed


def test_selection_drops_only_plainly_recognised_events() -> None:
    sel = Selection({"Hangup", "VarSet"}, TRACKED_VARIABLES)
    p = WireParser(expect_banner=False, select=sel)
    stream = (b"Event: Newstate\r\nUniqueid: 1\r\n\r\n"                      # dropped
              b"Event: Newstate\r\nActionID: 7\r\n\r\n"                      # kept: answers our action
              b"Event: VarSet\r\nVariable: __LAB_X\r\nValue: 1\r\n\r\n"      # dropped
              b"Event: VarSet\r\nVariable: __queuestatus\r\nValue: T\r\n\r\n"  # kept (normalised name)
              b"Event: VarSet\r\nValue: 1\r\n\r\n"                           # kept: normaliser counts the skip
              b"Event: VarSet\r\nVariable: A\r\nVariable: B\r\n\r\n"         # kept: duplicate header
              b"Event: New state \r\n\r\n"                                   # kept: not a plain name
              b"Event: VarSet\r\nVariable: QUEUESTATUSX\r\nValue: 1\r\n\r\n"    # dropped
              b"Event: VarSet\r\nVariable: QUEUESTATUS \r\nValue: 1\r\n\r\n"    # kept: trailing space
              b"Event: VarSet\r\nValue: 1\r\nVariable: VmStatus\r\n\r\n"        # kept: last line, any case
              b"Event: VarSet\r\nChanVariable: X\r\nVariable: Y\r\n\r\n"        # kept: a lookalike key
              b"Event: VarSet\r\nVariable: \xc4\xb1\r\n\r\n"                    # kept: not ASCII
              b"Response: Success\r\nActionID: 8\r\n\r\n")                   # kept: responses always
    got = p.feed(stream)
    assert [h.get("Variable") or h.get("Event") or h["Response"] for h in got] == [
        "Newstate", "__queuestatus", "VarSet", ["A", "B"], "New state", "QUEUESTATUS", "VmStatus", "Y", "\u0131",
        "Success"]
    assert p.dropped_events == 3


def test_gap_clock_is_the_last_timestamp_dropped_before_a_message_without_one() -> None:
    p = WireParser(expect_banner=False, select=Selection({"QueueParams", "Hangup"}, gap_clock=True))
    got = p.feed(b"Event: Newstate\r\nTimestamp: 10.5\r\n\r\n"
                 b"Event: Newstate\r\nTimestamp: bad\r\n\r\n"
                 b"Event: QueueParams\r\nQueue: q\r\n\r\n"          # no Timestamp: clock 10.5
                 b"Event: Hangup\r\nTimestamp: 12\r\n\r\n"          # own Timestamp: no clock
                 + b"".join(b"Event: Newstate\r\nTimestamp: %d\r\n\r\n" % i for i in range(100, 300))
                 + b"Response: Success\r\n\r\n")                     # after a long gap: the last one
    assert [h.get("Event") for h in got] == ["QueueParams", "Hangup", None]
    assert p.gap_clocks == [10.5, None, 299.0]
    assert len(p._gap) == 0
    assert p.feed(b"Event: Newstate\r") == [] and p.gap_clocks == []  # one entry per message returned


class _Spy(dict[str, "str | list[str]"]):
    """A header dict recording the keys read through get()."""

    read: set[str] = set()

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        _Spy.read.add(key)
        return super().get(key, default)


def test_the_normaliser_reads_only_headers_the_selection_parses() -> None:
    read = headers_read()
    for path in CAPTURES:
        for h in WireParser().feed(_raw(path)):
            name = h.get("Event")
            if not isinstance(name, str) or read.get(name) is None:
                continue
            _Spy.read = set()
            normalize(_Spy(h))
            assert _Spy.read <= read[name], (name, _Spy.read - read[name])  # type: ignore[operator]
    assert [e for e, keys in read.items() if keys is None] == ["UserEvent"]
    assert read["Newexten"] is not None and {"Application", "AppData", "Uniqueid"} <= read["Newexten"]


SUBSET_CASES = [
    "Event: Hangup\r\nUniqueid: 1\r\nUniqueid : 2\r\n Linkedid:3 \r\nChannel:  x \r\nChannelState: 6",
    "Event: Hangup\nUniqueid: 1\n\tCause:\t16\t\r\nX Queue: no\r\nQueue: a:b\r\nQueue",
    "Event: Hangup\r\n\x1cLanguage\x1c: en\r\nContext: caf\u00e9 \u00a0\r\nExten: \xff",
    # CRs: inside a value (kept), several ending a line (dropped), before a key, alone, at the very end.
    "Event: Hangup\r\nUniqueid: a\rb\r\nChannel: x\r\r\nCause: 16 \r\r\n\rQueue: q\r\nContext: a\r \r\nExten: \r\r",
    "Event: Hangup\r\r\nLanguage:\r\nLinkedid: \r\n\r\r\nQueue:\r\rq\r\nExten: e\r\r\r",
]


@pytest.mark.parametrize("text", SUBSET_CASES)
def test_subset_parse_equals_the_line_parser_on_every_selected_header(text: str) -> None:
    keys = frozenset({"Event", "Uniqueid", "Linkedid", "Channel", "Cause", "Queue", "Language", "Context", "Exten"})
    pattern = Selection({"Hangup"}, headers={"Hangup": keys}).pattern(b"Event: Hangup")
    assert pattern is not None
    raw = text.encode("utf-8", "surrogateescape")
    full = WireParser(expect_banner=False)._parse(raw)
    sub = _parse_subset(raw, pattern)
    assert {k: v for k, v in full.items() if k in keys} == sub


_KEYS = frozenset({"Event", "Uniqueid", "Linkedid", "Channel", "Cause", "Queue", "Language", "Context", "Exten"})


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["", " ", "\t", "\r", "X"]), st.sampled_from([*sorted(_KEYS), "Other"]),
                          st.sampled_from(["", " ", "\r"]), st.sampled_from([":", ": ", ":  ", " :"]),
                          st.text(alphabet="ab \t\r:", max_size=6), st.sampled_from(["\r\n", "\n", "\r\r\n", "\r"])),
                max_size=8))
def test_subset_parse_equals_the_line_parser_on_generated_lines(lines: list[tuple[str, ...]]) -> None:
    raw = ("Event: Hangup\r\n" + "".join("".join(parts) for parts in lines)).encode()
    pattern = Selection({"Hangup"}, headers={"Hangup": _KEYS}).pattern(b"Event: Hangup")
    assert pattern is not None
    full = WireParser(expect_banner=False)._parse(raw)
    assert {k: v for k, v in full.items() if k in _KEYS} == _parse_subset(raw, pattern)


@pytest.mark.parametrize("text", [
    "Key:  two spaces\r\nX: y", "Key: trailing \r\nX: y", "A:B: c\r\nX: y", " Lead: v", "Tab\tKey: v",
    "K: v\r\rX: y", "K: v\nX: y", "Dup: 1\r\nDup: 2", "Empty:\r\nX: y", "K: v\r\n\r\nX: y", "K: v\r",
    ": nokey", "K: v\x00 \r\nX: y", "Caf\u00e9: cr\u00e8me", "Bad \xff: x",
])
def test_fast_parse_equals_reference_parse(text: str) -> None:
    raw = text.encode("utf-8", "surrogateescape") if "\xff" not in text else text.encode("latin-1")
    p = WireParser(expect_banner=False)
    assert p._parse_fast(raw) == p._parse(raw)


def test_replay_cli_full_parse_prints_the_same_report(capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    path = str(FIXTURES / "concurrent.ami")
    assert main(["replay", path, "--records"]) == 0
    fast = capsys.readouterr().out
    assert main(["replay", path, "--records", "--full-parse"]) == 0
    assert capsys.readouterr().out == fast and '"calls": 6' in fast


def test_qmon_replay_imports_no_event_loop_database_or_panoramisk() -> None:
    """Start-up is a fifth of a replay: the CLI imports what other commands need only when they run."""
    import subprocess
    import sys

    path = str(FIXTURES / "concurrent.ami")
    code = ("import sys, io, contextlib\nfrom monitor.cli import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n    main(['replay', {path!r}])\n"
            "print(sorted(m for m in ('asyncio', 'sqlalchemy', 'panoramisk', 'aiohttp', 'prometheus_client')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent).stdout
    assert out.strip() == "[]"



# -- Newexten handed over pre-read, decided in stream order by the tracker (monitor/core/preread.py) ------------


def _tracker_state(tr: CallTracker) -> tuple[object, ...]:
    """What a Newexten can touch: channel states (in eviction order), callers, clock, counters, open calls."""
    st = tr.state
    return ([(uid, c.linkedid, c.channel, c.caller_num, c.caller_name, c.queue_app) for uid, c in st.chans.items()],
            dict(st.by_uid), st.now, st.daemon_now, st.pbx_offset, dict(st.stats), sorted(st.calls), list(st.closed),
            dict(st.ending), list(st.final))


def _fed(chunks: list[bytes], defer: bool, config: TrackerConfig | None = None) -> tuple[tuple[object, ...], ...]:
    """The chunks through the wire parser (tracker selection, Newexten pre-read or not) into Ingest, as live does;
    the records, counters and tracker state after it, and how many pre-read Newextens were parsed after all."""
    tr = CallTracker(config)
    records: list[CallRecord] = []
    ing = Ingest(tr, [lambda notes: merge_records(records, closed_records(notes))])
    parsed = 0
    steps: list[object] = []
    headers = PreRead.headers

    def counting(pre: PreRead) -> object:
        nonlocal parsed
        parsed += 1
        return headers(pre)

    p = WireParser(select=tracker_selection(extra=(), defer=defer))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(PreRead, "headers", counting)
        for chunk in chunks:
            for h in p.feed(chunk):
                ing.feed(h, 1.0)
                # After every message: the clock, the sizes, and the state of the channel it was about.
                uid = h.uniqueid if isinstance(h, PreRead) else h.get("Uniqueid")
                ch = tr.state.chans.get(uid) if isinstance(uid, str) else None
                steps.append((tr.state.now, tr.state.pbx_offset, len(tr.state.chans), len(tr.state.by_uid),
                              None if ch is None else (ch.linkedid, ch.channel, ch.caller_num, ch.caller_name)))
    merge_records(records, closed_records(tr.close_all(tr.now, "eof")))
    return ((ing.events + p.dropped_events, dict(ing.skipped)), _tracker_state(tr),
            tuple(str(r.to_dict()) for r in records), tuple(steps), (parsed,))


def _chunked(raw: bytes, cuts: list[int]) -> list[bytes]:
    edges = sorted({0, len(raw), *(c % (len(raw) + 1) for c in cuts)})
    return [raw[a:b] for a, b in itertools.pairwise(edges)]


@pytest.mark.parametrize("path", STREAMS, ids=_name)
def test_pre_read_newexten_leaves_the_same_records_counters_and_tracker_state(path: Path) -> None:
    raw = _raw(path)
    want = _fed([raw], defer=False)
    for cuts in ([], list(range(997, len(raw), 997)), random.Random(path.name).sample(range(len(raw)), 40)):
        assert _fed(_chunked(raw, cuts), defer=True)[:4] == want[:4], cuts[:4]


def test_pre_read_newexten_state_over_every_capture_in_one_tracker_at_a_small_channel_cap() -> None:
    """max_channels tiny: channel states are evicted all the time, so creation order must be exact."""
    raw = b"".join(_raw(p) if i == 0 else _raw(p).split(b"\r\n", 1)[1] for i, p in enumerate(STREAMS))
    cfg = TrackerConfig(max_channels=3)
    want, got = _fed([raw], defer=False, config=cfg), _fed(_chunked(raw, list(range(65536, len(raw), 65536))),
                                                          defer=True, config=cfg)
    assert got[:4] == want[:4]
    assert want[1][5]["evicted_channels"] > 40  # type: ignore[index]


def _queue_then_dialplan_in_one_chunk(path: Path) -> bool:
    """The capture has a Queue() Newexten and, after it, a Newexten of the same channel of another application."""
    seen: set[str] = set()
    for h in WireParser().feed(_raw(path)):
        if h.get("Event") == "Newexten":
            if h.get("Application") == "Queue":
                seen.add(str(h.get("Uniqueid")))
            elif h.get("Uniqueid") in seen:
                return True
    return False


QUEUE_THEN_DIALPLAN = [p for p in STREAMS if _queue_then_dialplan_in_one_chunk(p)]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(QUEUE_THEN_DIALPLAN), st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=12))
def test_pre_read_newexten_decided_in_stream_order_under_random_chunking(path: Path, cuts: list[int]) -> None:
    """A Queue Newexten makes the channel a caller: the later Newextens of it in the same chunk must be parsed
    (Queue() returned), the ones before it not; whatever the chunking, the result is the full parse's."""
    raw = _raw(path)
    want, got = _fed([raw], defer=False), _fed(_chunked(raw, cuts), defer=True)
    assert got[:4] == want[:4]
    # Some pre-read Newextens were parsed after all (caller channels), most were not.
    newextens = raw.count(b"Event: Newexten\r\n")
    assert 0 < got[4][0] < newextens  # type: ignore[operator]


def test_queue_then_dialplan_captures_are_there() -> None:
    assert len(QUEUE_THEN_DIALPLAN) >= 20


_NEWEXTEN = (b"Event: Newexten\r\nPrivilege: dialplan,all\r\nTimestamp: 1700000000.25\r\nChannel: PJSIP/a-01\r\n"
             b"ChannelState: 6\r\nChannelStateDesc: Up\r\nCallerIDNum: 555\r\nCallerIDName: Ann\r\n"
             b"ConnectedLineNum: <unknown>\r\nConnectedLineName: <unknown>\r\nLanguage: en\r\nAccountCode: \r\n"
             b"Context: in\r\nExten: s\r\nPriority: 2\r\nUniqueid: 17.1\r\nLinkedid: 17.1\r\nExtension: s\r\n"
             b"Application: Playback\r\nAppData: hello")


@pytest.mark.parametrize("change", [
    (b"Uniqueid: 17.1\r\n", b"Uniqueid: 17.1\r\nUniqueid: 18\r\n"),        # repeated key
    (b"Uniqueid: 17.1\r\n", b"Uniqueid : 17.1\r\n"),                          # key the line parser strips
    (b"Uniqueid: 17.1\r\n", b"Uniqueid: \r\n"),                                # empty: the normaliser's skip
    (b"Application: Playback\r\n", b""),                                       # missing
    (b"Application: Playback", b"Application: Queue "),                        # trailing space (rstripped)
    (b"CallerIDName: Ann", b"CallerIDName: Ann\x1f"),                          # str.rstrip() strips it too
    (b"CallerIDName: Ann", b"CallerIDName: Jos\xc3\xa9\xc2\xa0"),               # non-ASCII end (U+00A0)
    (b"CallerIDName: Ann", b"CallerIDName: A\rnn"),                            # a CR inside
    (b"CallerIDName: Ann", b"CallerIDName: A\nUniqueid: 19"),                  # bare LF: another line
    (b"Timestamp: 1700000000.25", b"Timestamp: soon"),                        # replay's clock reads float()
    (b"AppData: hello", b"AppData: hello\r\nSequenceNumber: 4"),               # a layout Asterisk 13-22 never sends
    (b"Event: Newexten", b"Event: Newexten\r\nActionID: 1"),                  # an answer to an action
])
def test_unusual_newexten_is_parsed_as_before(change: tuple[bytes, bytes]) -> None:
    raw = _NEWEXTEN.replace(*change)
    p = WireParser(expect_banner=False, select=tracker_selection(extra=(), defer=True))
    got = p.feed(raw + b"\r\n\r\n")
    assert len(got) == 1 and not isinstance(got[0], PreRead)


def test_plain_newexten_pre_read_values_are_what_the_normaliser_reads() -> None:
    p = WireParser(expect_banner=False, select=tracker_selection(extra=(), defer=True))
    for raw in (_NEWEXTEN, _NEWEXTEN.replace(b"Ann", b"\xc5\x81\xc3\xb3d\xc5\xba Jan"),
                _NEWEXTEN.replace(b"Ann", b"\xff\xfeX"), _NEWEXTEN.replace(b"Channel: PJSIP/a-01", b"Channel: ")):
        (pre,) = p.feed(raw + b"\r\n\r\n")
        assert isinstance(pre, PreRead)
        e = normalize(pre.headers())
        assert isinstance(e, ev.Newexten)
        assert (pre.uniqueid, pre.application, pre.channel, pre.caller_num, pre.caller_name, pre.timestamp) == (
            e.chan.uniqueid, e.application, e.chan.channel, e.chan.caller_num, e.chan.caller_name, e.ts)
        assert pre.headers() == {k: v for k, v in WireParser()._parse(raw).items() if k in headers_read()["Newexten"]}
        # Membership as for the header dict (code wrapping Ingest.feed asks "ActionID" in it).
        assert all(k in pre for k in WireParser()._parse(raw)) and "ActionID" not in pre and "X" not in pre


def test_every_pre_read_newexten_of_the_captures_reads_as_the_normaliser_does() -> None:
    n = 0
    for path in STREAMS:
        p = WireParser(select=tracker_selection(extra=(), defer=True))
        for pre in p.feed(_raw(path)):
            if isinstance(pre, PreRead):
                e = normalize(pre.headers())
                assert isinstance(e, ev.Newexten)
                assert (pre.uniqueid, pre.application, pre.channel, pre.caller_num, pre.caller_name,
                        pre.timestamp) == (e.chan.uniqueid, e.application, e.chan.channel, e.chan.caller_num,
                                           e.chan.caller_name, e.ts)
                n += 1
    assert n > 2000


def test_a_listened_newexten_is_never_pre_read() -> None:
    p = WireParser(expect_banner=False, select=tracker_selection(extra={"Newexten"}, defer=True))
    (h,) = p.feed(_NEWEXTEN + b"\r\n\r\n")
    assert isinstance(h, dict) and h["Application"] == "Playback"


def test_pre_read_newexten_of_a_channel_first_seen_in_a_queue_entry_gives_its_linkedid() -> None:
    """A QueueEntry (resync answer) carries no Linkedid: the channel's next Newexten must still set it."""
    entry = (b"Event: QueueEntry\r\nQueue: q\r\nPosition: 1\r\nChannel: PJSIP/a-01\r\nUniqueid: 17.1\r\n"
             b"CallerIDNum: 555\r\nCallerIDName: Ann\r\nWait: 3\r\n\r\n")
    stream = b"Asterisk Call Manager/9.0.0\r\n" + entry + _NEWEXTEN.replace(b"Linkedid: 17.1", b"Linkedid: 16.9")
    want, got = _fed([stream + b"\r\n\r\n"], defer=False), _fed([stream + b"\r\n\r\n"], defer=True)
    assert got[:4] == want[:4]
    assert want[1][0] == [("17.1", "16.9", "PJSIP/a-01", "555", "Ann", None)]  # type: ignore[index]
