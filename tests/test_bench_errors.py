"""The bench's user mistakes and missing parts: one clear line, never a traceback or an empty run counted as a
result (a run of 0 FastAGI sessions printed p99 0.0 ms and "csat_ok": true)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench import run
from tests.support import store as support_store

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("args", "error"), [
    (("agi", "--sessions", "0"), "argument --sessions: must be at least 1, not 0"),
    (("store", "--rate", "x"), "argument --rate: not a number: 'x'"),
    (("store", "--seconds", "nan"), "argument --seconds: not a finite number: 'nan'"),
    (("scrape", "--scrape-interval-s", "inf"), "argument --scrape-interval-s: not a finite number: 'inf'"),
    (("store", "--batch-size", "-5"), "argument --batch-size: must be at least 1, not -5"),
    (("store", "--engine", "mysql"), "argument --engine: invalid choice: 'mysql'"),
])
def test_load_refuses_bad_arguments(args: tuple[str, ...], error: str) -> None:
    proc = subprocess.run([sys.executable, "bench/load.py", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and not proc.stdout
    assert error in proc.stderr.strip().splitlines()[-1]


def test_store_rows_without_postgresql_say_not_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(support_store, "PG_PORT", port)
    rows = run._store_rows(quick=True)
    sqlite = [r for r in rows if r[0].startswith("store writer, sqlite")]
    assert len(sqlite) == 2 and all(r[3] == "PASS" for r in sqlite), sqlite
    (pg,) = [r for r in rows if "postgresql" in r[0]]
    assert pg[3] == "FAIL"
    assert pg[1].startswith(f"not measured: no PostgreSQL at 127.0.0.1:{port} (Connection refused)"), pg


def test_a_measurement_that_fails_is_a_row_not_a_traceback() -> None:
    with pytest.raises(run.NotMeasured, match="argument --sessions: must be at least 1"):
        run._load("agi", "--sessions", "0")
