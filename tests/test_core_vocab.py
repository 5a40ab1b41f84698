"""Domain vocabularies and rules that live in the core once (monitor/core/vocab.py)."""

from __future__ import annotations

from monitor.core import vocab
from monitor.core.records import OUTCOMES, UNANSWERED_FOR_VOICEMAIL
from monitor.core.survey import STATUSES, SurveyResultRecord
from monitor.replay import replay_messages
from tests.support.builders import CallBuilder


def test_valid_csat_is_1_to_5_and_parse_csat_reads_only_decimal_text() -> None:
    assert [s for s in range(-1, 8) if vocab.valid_csat(s)] == [1, 2, 3, 4, 5]
    assert not vocab.valid_csat(None)
    assert [vocab.parse_csat(r) for r in ("1", " 5 ", "0", "6", "", "x", "4.0", "²", "-3")] == [
        1, 5, None, None, None, None, None, None, None]


def test_nps_and_ces_ranges() -> None:
    assert [s for s in range(-1, 12) if vocab.valid_nps(s)] == list(range(11))
    assert [s for s in range(-1, 8) if vocab.valid_ces(s)] == [1, 2, 3, 4, 5]
    assert [vocab.nps_bucket(s) for s in (0, 6, 7, 8, 9, 10)] == [
        "detractor", "detractor", "passive", "passive", "promoter", "promoter"]


def test_vocabularies_are_the_strings_of_the_public_contract() -> None:
    assert OUTCOMES == ("answered", "abandoned", "abandoned_short", "timeout", "exit_empty", "join_empty",
                        "exit_key", "full", "join_unavail", "leave_unavail", "withdraw", "unknown")
    assert UNANSWERED_FOR_VOICEMAIL == set(vocab.VOICEMAIL_REASONS) == {
        "timeout", "exit_empty", "join_empty", "exit_key", "full", "join_unavail", "leave_unavail", "withdraw"}
    assert vocab.NOT_ENTERED == {"join_empty", "join_unavail", "full"}
    assert vocab.CALL_OUTCOME_LABELS[-2:] == ("transferred", "unknown")
    assert vocab.ABANDONED_ANY == {"abandoned", "abandoned_short"}
    assert STATUSES == ("completed", "partial", "no_input", "invalid", "hangup", "declined", "not_eligible",
                        "unreachable")
    assert all(type(v) is str for v in (*vocab.CALL_OUTCOME_LABELS, *vocab.VOICEMAIL_REASONS, *STATUSES))
    assert vocab.skip_reason(vocab.SkipReason.MISSING, "QueueCallerJoin.Queue") == "missing:QueueCallerJoin.Queue"


def test_agi_statuses_map_onto_the_userevent_vocabulary() -> None:
    def core_status(status: str) -> str:
        rec = SurveyResultRecord("l", "u", None, "q", "a", status, 4, None, None, "", "en", "agi", 0.0, 1.0)
        return rec.to_survey().status

    assert [core_status(s) for s in STATUSES] == ["OK", "OK", "NOINPUT", "INVALID", "HANGUP", "DECLINED",
                                                  "NOT_ELIGIBLE", "UNREACHABLE"]


def test_userevent_csat_with_a_non_decimal_digit_is_invalid_not_a_tracker_error() -> None:
    """``"²".isdigit()`` is True but ``int("²")`` raises: once a tracker_error that lost the survey."""
    c = CallBuilder("60.1")
    msgs = [*c.answered(0)[:-1], c.ev("UserEvent", 40, UserEvent="CSAT", Queue="support", Score="²"), c.hangup(41)]
    res = replay_messages([(m, None) for m in msgs])
    assert res.skipped == {}
    (rec,) = res.records
    assert rec.survey is not None and (rec.survey.status, rec.survey.score, rec.survey.raw) == ("INVALID", None, "²")


def test_abandon_outcome_splits_at_the_short_threshold() -> None:
    assert [vocab.abandon_outcome(w, 5.0) for w in (0.0, 4.99, 5.0, 60.0)] == [
        "abandoned_short", "abandoned_short", "abandoned", "abandoned"]
    assert vocab.abandon_outcome(3.0, 0.0) == "abandoned"  # abandon_short_s = 0: no abandon is short
