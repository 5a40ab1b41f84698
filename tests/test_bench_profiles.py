"""``bench/profiles.py`` (pyinstrument) still profiles each hot path: the tree names the functions the docs'
"Where the remaining time goes" speaks of (shares are for a human to read, not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _profile(*args: str) -> str:
    return subprocess.run([sys.executable, "bench/profiles.py", *args], capture_output=True, text=True, timeout=120,
                          check=True, cwd=ROOT).stdout


@pytest.mark.parametrize(("args", "frames"), [
    (("wire+track",), ("WireParser.feed", "WireParser._select_loop", "Ingest.feed", "CallTracker.feed")),
    (("replay",), ("monitor/cli/replay.py", "replay_messages", "WireParser.feed", "Ingest.feed")),
    (("daemon", "--repeat", "1"), ("AmiWireProtocol.data_received", "WireParser.feed", "Ingest.feed")),
    (("scrape", "--scrapes", "3"),  # 200 queues x 50 members, as the bench
     ("QmonMetrics.expose_parts", "agent_text", "QmonMetrics.snapshot")),
])
def test_each_path_is_profiled(args: tuple[str, ...], frames: tuple[str, ...]) -> None:
    tree = _profile(*args)
    assert "Samples:" in tree, tree[:500]
    for frame in frames:
        assert frame in tree, (frame, tree[:3000])


def test_html_view_written(tmp_path: Path) -> None:
    out = tmp_path / "p.html"
    assert _profile("wire+track", "--out", str(out)).strip() == f"profile written to {out}"
    assert out.read_text().lstrip().lower().startswith("<!doctype html")
