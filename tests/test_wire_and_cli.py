"""The wire parser under any chunking, and the ``qmon replay`` command."""

from __future__ import annotations

import gzip
import json
import random
import shutil
from pathlib import Path

import pytest

from monitor.ami.files import read_capture
from monitor.ami.wire import WireParser, encode
from monitor.cli import main
from tests.support.factcheck import FIXTURES, SCENARIOS


def _jsonl_messages(scenario: str) -> list[dict[str, object]]:
    return [m for m, _ in read_capture(FIXTURES / f"{scenario}.jsonl")]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_wire_parser_any_chunking_equals_jsonl(scenario: str) -> None:
    raw = (FIXTURES / f"{scenario}.ami").read_bytes()
    want = _jsonl_messages(scenario)
    rng = random.Random(scenario)
    for mode in ("whole", "random", "bytes"):
        p = WireParser()
        got = []
        i = 0
        while i < len(raw):
            n = len(raw) if mode == "whole" else 1 if mode == "bytes" else rng.randint(1, 700)
            got.extend(p.feed(raw[i:i + n]))
            i += n
        assert p.banner == "Asterisk Call Manager/11.0.0"
        assert got == want, mode


def test_wire_parser_garbage_and_oversize() -> None:
    p = WireParser(max_message_bytes=1000)
    assert p.feed(b"Asterisk Call Manager/11.0.0\r\nno colon here\r\nEvent: X\r\n\r\n") == [
        {"_lines": ["no colon here"], "Event": "X"}]
    assert p.feed(b"A" * 5000) == [] and p.oversized == 1
    assert p.feed(b"\n\nEvent: Y\nKey: v\n\n") == [{"Event": "Y", "Key": "v"}]


def test_encode_roundtrip_keeps_duplicates_and_empty_values() -> None:
    msg = {"Event": "UserEvent", "Score": "", "Var": ["a=1", "b=2"]}
    p = WireParser(expect_banner=False)
    assert p.feed(encode(msg)) == [msg]


def test_replay_cli_json_table_and_gzip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gz = tmp_path / "concurrent.ami.gz"
    gz.write_bytes(gzip.compress((FIXTURES / "concurrent.ami").read_bytes()))
    shutil.copy(FIXTURES / "repeat_caller.jsonl", tmp_path)
    assert main(["replay", str(gz), str(tmp_path / "repeat_caller.jsonl"), "--sl-threshold-s", "5"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert set(rep) == {"events", "calls", "voicemail_calls", "callers", "queues"}
    assert rep["calls"] == 9 and rep["callers"] == {"distinct": 7, "repeat_calls": 2}
    sup = rep["queues"]["support"]
    assert (sup["entered"], sup["answered"], sup["abandoned"], sup["abandoned_short"]) == (9, 6, 3, 2)
    # 6 answered, waits 2,2,7,8,2,2: 4 within 5 s; denominator 9 - 2 short abandons.
    assert sup["service_level"] == pytest.approx(4 / 7)
    assert sup["csat"]["scores"] == {"1": 1, "2": 1, "3": 1, "4": 0, "5": 2}
    assert main(["replay", str(gz), "--report", "table"]) == 0
    assert "support" in capsys.readouterr().out


def test_replay_cli_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(tmp_path / "missing.ami")]) == 2
    assert "cannot open" in capsys.readouterr().err
    (tmp_path / "x.txt").write_text("hi")
    assert main(["replay", str(tmp_path / "x.txt")]) == 2
    assert main(["replay", str(FIXTURES / "abandoned.ami"), "--repeat-window", "soon"]) == 2
    assert "bad window" in capsys.readouterr().err
    assert main(["nope"]) == 2


def test_replay_table_shows_every_queue_exit(capsys: pytest.CaptureFixture[str]) -> None:
    """The table has a column for each exit of the JSON report; queue_full's refused caller lands under ``full``."""
    assert main(["replay", str(FIXTURES / "ast22" / "queue_full.ami"), "--report", "table"]) == 0
    head, _, row = capsys.readouterr().out.splitlines()[1:4]
    cells = dict(zip(head.split(), row.split(), strict=True))
    assert (cells["entered"], cells["full"], cells["junav"], cells["lunav"], cells["wdraw"]) == ("1", "1", "0", "0",
                                                                                                 "0")
