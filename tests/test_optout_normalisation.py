"""The survey opt-out list and cooldown key numbers as the tracker does ([tracker] home_region, trunk_prefixes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import load_settings, number_normalizer
from monitor.survey.state import SurveyState

PL = '[tracker]\nhome_region = "PL"\ntrunk_prefixes = ["9"]\n'


def _pl(tmp_path: Path) -> SurveyState:
    t = load_settings({}, PL, needs={"tracker"}).tracker
    return SurveyState(tmp_path / "s.db", number_normalizer(t))


@pytest.mark.parametrize("typed", ["221234567", "0048 22 123 45 67", "9221234567", "+48221234567"])
def test_optout_add_with_home_region_matches_the_trackers_e164(tmp_path: Path, typed: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pl.toml").write_text(PL)
    assert main(["optout", "add", typed, "--config", str(tmp_path / "pl.toml"), "--state", str(tmp_path / "s.db")],
                {}) == 0
    state = _pl(tmp_path)
    try:
        assert state.is_opted_out("+48221234567")  # how the tracker stores record.caller
        assert [n for n, _ in state.optouts()] == ["+48221234567"]
    finally:
        state.close()


def test_entries_stored_before_are_rewritten_to_the_trackers_key(tmp_path: Path) -> None:
    old = SurveyState(tmp_path / "s.db")  # no region: stored as typed
    old.add_optout("221234567", 1.0)
    old.mark_surveyed("221234567", 5.0)
    old.close()
    state = _pl(tmp_path)
    try:
        assert state.is_opted_out("+48221234567") and state.is_opted_out("221234567")
        assert state.last_surveyed("+48221234567") == 5.0
        assert state.remove_optout("+48221234567") and not state.is_opted_out("221234567")
    finally:
        state.close()


def test_cooldown_keys_by_the_same_normalisation(tmp_path: Path) -> None:
    state = _pl(tmp_path)
    try:
        state.mark_surveyed("+48221234567", 10.0)
        assert state.last_surveyed("221234567") == 10.0
        assert state.last_surveyed("9221234567") == 10.0
    finally:
        state.close()


def test_a_huge_number_is_refused(tmp_path: Path) -> None:
    state = _pl(tmp_path)
    try:
        with pytest.raises(ValueError, match="not a phone number"):
            state.add_optout("1" * 100_000, 1.0)
        assert state.optouts() == []
    finally:
        state.close()
