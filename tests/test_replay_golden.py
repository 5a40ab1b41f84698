"""Golden files: ``qmon replay --records`` of every recorded transcript is byte-identical to tests/fixtures/golden.

They pin the whole JSON contract (report and every call record) against refactors of the core. When a change
of behaviour is intended, regenerate them and review the diff::

    for f in tests/fixtures/*.ami; do qmon replay --records $f > tests/fixtures/golden/$(basename $f .ami).json; done
    qmon replay --records $(ls tests/fixtures/*.facts.json | sed 's/.facts.json/.ami/') \
        > tests/fixtures/golden/all_scenarios.json
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli import main
from tests.support.factcheck import FIXTURES, SCENARIOS

GOLDEN = FIXTURES / "golden"


def replay_stdout(paths: list[Path], capsys: pytest.CaptureFixture[str]) -> str:
    """What ``qmon replay --records PATH...`` prints on stdout (it must print nothing on stderr)."""
    assert main(["replay", "--records", *map(str, paths)], {}) == 0
    out, err = capsys.readouterr()
    assert err == ""  # no skipped message in a real recording
    return out


def test_every_scenario_has_a_golden_file() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.json")) == sorted([*SCENARIOS, "all_scenarios"])


@pytest.mark.parametrize("suffix", [".ami", ".jsonl"])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_replay_matches_golden(scenario: str, suffix: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert replay_stdout([FIXTURES / f"{scenario}{suffix}"], capsys) == (GOLDEN / f"{scenario}.json").read_text()


def test_replay_of_all_scenarios_at_once_matches_golden(capsys: pytest.CaptureFixture[str]) -> None:
    """One run over every capture: repeat callers across files, many queues in one report."""
    paths = sorted(FIXTURES / f"{s}.ami" for s in SCENARIOS)
    assert replay_stdout(paths, capsys) == (GOLDEN / "all_scenarios.json").read_text()
