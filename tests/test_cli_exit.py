"""``qmon replay`` as the program leaves through ``os._exit`` (no interpreter tear-down): what the tear-down did
for others must still happen. A profiler or tracer wrapping the program writes its result after the program
returns (``python -m cProfile -o``, ``python -m pyinstrument``, coverage), and a closed stdout or stderr is not
an error of qmon's (``print`` to a closed stream writes nothing, as before)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
CAPTURE = str(Path(__file__).parent / "fixtures" / "abandoned.ami")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QMON_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_replay_under_a_profiler_still_writes_the_profile(tmp_path: Path) -> None:
    out = tmp_path / "replay.prof"
    r = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), "-m", "monitor", "replay", CAPTURE],
                       capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    assert '"events":' in r.stdout
    assert out.is_file() and out.stat().st_size > 0


def test_replay_with_stdout_or_stderr_closed_is_not_an_error(tmp_path: Path) -> None:
    for fd in (1, 2):
        r = subprocess.run([sys.executable, "-m", "monitor", "replay", CAPTURE], capture_output=True, env=_env(),
                           cwd=tmp_path, timeout=60, preexec_fn=lambda fd=fd: os.close(fd))  # after the pipes' dup2
        assert (fd, r.returncode) == (fd, 0), r.stderr
        assert b"unexpected error" not in r.stderr + r.stdout
