"""``python -m bench --quick`` still runs every benchmark (tiny stream): figures are printed, not asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_runs_and_prints_the_table() -> None:
    out = subprocess.run([sys.executable, "-m", "bench", "--quick"], capture_output=True, text=True, timeout=180,
                         check=True, cwd=ROOT).stdout
    rows = {ln.split("  ")[0].strip(): ln for ln in out.splitlines()[2:]}
    for stage in ("panoramisk-bare", "replay", "daemon", "amisource", "wire+track", "tracker", "parse-select"):
        line = rows[f"{stage} events/CPU-s"]
        assert float(line.split()[2].replace(",", "")) > 0, line
    for figure in ("qmon replay (whole process) / panoramisk bare", "live path (TCP, metrics, store) / panoramisk bare",
                   "eventfilter: bytes left / read classes alone", "bytes per open call (waiting in queue)"):
        assert figure in rows, figure
    assert any(k.startswith("RSS over") for k in rows)
    for prefix in ("AMI latency at 5,000 events/s", "/metrics, ", "FastAGI, 10 concurrent surveys",
                   "store writer, sqlite", "store writer, postgresql"):
        assert any(k.startswith(prefix) for k in rows), prefix
    assert "not measured" not in out
    # The load rows ran for real: nothing lost, every record written (their speed is for the full run to judge).
    assert rows["latency run: nothing dropped (events, records)"].rstrip().endswith("PASS")
