"""The wire parser's fast path (selection + fast framing/parsing) changes nothing qmon reports or records."""

from __future__ import annotations

import gzip
import hashlib
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.ami.selection import headers_read, tracker_selection
from monitor.ami.wire import Headers, Selection, WireParser, _parse_subset
from monitor.core.normalize import TRACKED_VARIABLES, normalize
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
