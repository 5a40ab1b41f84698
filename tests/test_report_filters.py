"""``qmon report`` filters: a filter that matches nothing says so; with --queue the header counts that queue only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
WINDOW = ("--from", "1970-01-02", "--to", "9999-12-30")


@pytest.fixture
def db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    path = str(tmp_path / "r.db")
    files = [str(FIXTURES / f"{n}.queue_log") for n in ("abandoned", "concurrent", "blind_transfer")]
    assert main(["import-queue-log", *files, "--db", path], {}) == 0
    capsys.readouterr()
    return path


def _report(db: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[dict, str]:  # type: ignore[type-arg]
    assert main(["report", "--db", db, *WINDOW, "--format", "json", *extra], {}) == 0
    out = capsys.readouterr()
    return json.loads(out.out), out.err


@pytest.mark.parametrize(("flags", "note"), [
    (("--pbx", "nonexist"), "no calls in this window for --pbx nonexist"),
    (("--queue", "nonexistent"), "--queue nonexistent: no call visited this queue"),
    (("--agent", "nobody"), "--agent nobody: no call of this agent"),
])
def test_a_filter_matching_nothing_is_said(db: str, capsys: pytest.CaptureFixture[str], flags: tuple[str, ...],
                                           note: str) -> None:
    _, err = _report(db, capsys, *flags)
    assert err.startswith(f"qmon report: {note}") and len(err.strip().splitlines()) == 1


def test_no_note_when_something_matched(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    rep, err = _report(db, capsys, "--queue", "support")
    assert err == "" and rep["queues"]


def test_queue_filter_header_counts_that_queue(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    everything, _ = _report(db, capsys)
    sales, _ = _report(db, capsys, "--queue", "sales")
    visited_sales = sales["queues"]["sales"]["entered"] + sales["queues"]["sales"]["join_empty"]
    assert everything["report"]["calls"] > sales["report"]["calls"] == visited_sales > 0
