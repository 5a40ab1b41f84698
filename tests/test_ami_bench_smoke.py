"""bench/throughput.py still runs (tiny stream): figures are printed, not asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "throughput.py"


def test_throughput_bench_runs() -> None:
    out = subprocess.run([sys.executable, str(BENCH), "--repeat", "1", "--scenarios", "abandoned_short"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    lines = out.splitlines()
    assert lines[0].startswith("stream: 1 transcripts x 1")
    assert [ln.split()[0] for ln in lines[2:]] == ["qmon", "panoramisk", "wire+track", "tracker"]
    assert all(float(ln.split()[1].replace(",", "")) > 0 for ln in lines[2:])
