"""The shipped manager.conf event filter: current, and never filtering an event qmon handles."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from monitor.ami.eventfilter import WIRE_EXTRA, filter_lines, main, passes, render, to_python
from monitor.ami.selection import DAEMON_EVENTS, tracker_events
from monitor.ami.wire import WireParser
from monitor.core.normalize import TRACKED_VARIABLES, normalize
from tests.test_wire_fast import STREAMS

SHIPPED = Path(__file__).resolve().parent.parent / "asterisk" / "manager_eventfilter.conf"
PATTERNS = [to_python(p) for p in filter_lines()]


def test_shipped_file_is_what_the_tables_give(capsys: pytest.CaptureFixture[str]) -> None:
    assert SHIPPED.read_text() == render()
    assert main(["--check", str(SHIPPED)]) == 0


def test_check_reports_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "f.conf"
    stale.write_text(render().replace("Hangup|", ""))
    assert main(["--check", str(stale)]) == 1
    assert "stale" in capsys.readouterr().err
    assert main(["--check", str(tmp_path / "missing.conf")]) == 2


@pytest.mark.parametrize("name", sorted(tracker_events() | WIRE_EXTRA | {"QueueMemberPenalty"}))
def test_every_event_of_the_handler_table_passes(name: str) -> None:
    if name == "VarSet":
        for var in sorted(TRACKED_VARIABLES):
            for spelled in (var, "__" + var, "_" + var.lower(), var.title()):
                text = f"Event: VarSet\r\nPrivilege: dialplan,all\r\nChannel: X\r\nVariable: {spelled}\r\nValue: 1\r\n"
                assert passes(PATTERNS, text), spelled
        return
    assert passes(PATTERNS, f"Event: {name}\r\nPrivilege: call,all\r\nUniqueid: 1.2\r\n")


@pytest.mark.parametrize("text", [
    "Event: Newstate\r\nPrivilege: call,all\r\n", "Event: HangupRequest\r\nPrivilege: call,all\r\n",
    "Event: NewexteN\r\n", "Event: VarSet\r\nPrivilege: dialplan,all\r\nVariable: LAB_QUEUESTATUS\r\nValue: 1\r\n",
    "Event: VarSet\r\nVariable: QUEUESTATUSX\r\nValue: 1\r\n", "Event: Cdr\r\nChannel: x\r\nEvent: Hangup\r\n",
])
def test_other_events_are_filtered(text: str) -> None:
    assert not passes(PATTERNS, text)


@pytest.mark.parametrize("path", STREAMS, ids=lambda p: p.name)
def test_no_event_qmon_uses_in_any_transcript_is_filtered(path: Path) -> None:
    raw = path.read_bytes()
    raw = gzip.decompress(raw) if path.suffix == ".gz" else raw
    used = dropped = 0
    for message in raw.split(b"\r\n\r\n")[1:]:  # the banner + Login response first
        (h,) = WireParser(expect_banner=False).feed(message + b"\r\n\r\n") or [{}]
        if "Event" not in h:
            continue
        keep = passes(PATTERNS, message.decode("utf-8", "replace") + "\r\n")
        if normalize(h) is not None or h["Event"] in DAEMON_EVENTS:
            assert keep, h
            used += 1
        dropped += not keep
    assert used > 0 and dropped > used  # most of the stream never leaves Asterisk
