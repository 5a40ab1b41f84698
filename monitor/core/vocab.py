"""qmon's domain vocabularies in one place: outcomes, survey statuses, skip reasons, and the CSAT/NPS/CES ranges.

Every value is a ``StrEnum`` member or a tuple of plain strings, so it compares equal to (and formats as) the
string that reports, metric labels, the database and logs carry. Edges should import from here rather than
spell the strings again.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """How one queue segment ended, in queue_log terms (``unknown`` only when the stream had a gap).

    ``ABANDONED`` and ``ABANDONED_SHORT`` are disjoint: short = the caller hung up after waiting less than
    ``abandon_short_s``. The replay report's ``abandoned`` key is their sum (see :data:`ABANDONED_ANY`).
    """

    ANSWERED = "answered"  # AgentConnect (queue_log CONNECT)
    ABANDONED = "abandoned"  # caller hung up while waiting >= abandon_short_s (ABANDON)
    ABANDONED_SHORT = "abandoned_short"  # caller hung up while waiting < abandon_short_s (ABANDON)
    TIMEOUT = "timeout"  # the Queue() timeout (EXITWITHTIMEOUT)
    EXIT_EMPTY = "exit_empty"  # leavewhenempty (QUEUESTATUS=LEAVEEMPTY; EXITEMPTY)
    JOIN_EMPTY = "join_empty"  # joinempty: never entered (QUEUESTATUS=JOINEMPTY; no queue_log line)
    EXIT_KEY = "exit_key"  # the caller pressed a key to leave (EXITWITHKEY)
    FULL = "full"  # maxlen reached: Queue() refused the caller (QUEUESTATUS=FULL; no queue event, no queue_log line)
    JOIN_UNAVAIL = "join_unavail"  # joinempty=unavailable refused the caller (QUEUESTATUS=JOINUNAVAIL; no queue_log)
    LEAVE_UNAVAIL = "leave_unavail"  # leavewhenempty=unavailable put the caller out (QUEUESTATUS=LEAVEUNAVAIL)
    WITHDRAW = "withdraw"  # the QueueWithdrawCaller action took the caller out (QUEUESTATUS=WITHDRAW; WITHDRAW)
    UNKNOWN = "unknown"  # closed by a gap, stale sweep or shutdown before any outcome


#: Segment outcomes, in declaration order (= the order of ``records.OUTCOMES``).
SEGMENT_OUTCOMES: tuple[str, ...] = tuple(o.value for o in Outcome)
#: Both kinds of abandon: what the report's ``abandoned`` key counts (the metric label ``abandoned`` does not).
ABANDONED_ANY: frozenset[str] = frozenset({Outcome.ABANDONED.value, Outcome.ABANDONED_SHORT.value})
#: Outcomes after which a call may fall through to VoiceMail (= ``Voicemail.reason`` values), in label order.
VOICEMAIL_REASONS: tuple[str, ...] = (
    Outcome.TIMEOUT.value, Outcome.EXIT_EMPTY.value, Outcome.JOIN_EMPTY.value, Outcome.EXIT_KEY.value,
    Outcome.FULL.value, Outcome.JOIN_UNAVAIL.value, Outcome.LEAVE_UNAVAIL.value, Outcome.WITHDRAW.value,
)
#: Outcomes of a Queue() that refused the caller: the segment never entered (no ENTERQUEUE in queue_log).
NOT_ENTERED: frozenset[str] = frozenset({Outcome.JOIN_EMPTY.value, Outcome.FULL.value, Outcome.JOIN_UNAVAIL.value})
#: The metric-only label of ``qmon_queue_calls_total``: an answered segment that its member transferred.
TRANSFERRED = "transferred"
#: Every ``outcome`` label of ``qmon_queue_calls_total``, in the order the metrics pre-create them (the last two,
#: transferred and unknown, have no wait histogram).
CALL_OUTCOME_LABELS: tuple[str, ...] = (
    *SEGMENT_OUTCOMES[:-1], TRANSFERRED, Outcome.UNKNOWN.value,
)
#: ``CallRecord.outcome`` when no segment was answered but the caller reached VoiceMail.
VOICEMAIL = "voicemail"


def abandon_outcome(wait_s: float, abandon_short_s: float) -> Outcome:
    """``ABANDONED_SHORT`` for a wait (s) under the short-abandon threshold (s), else ``ABANDONED``."""
    return Outcome.ABANDONED_SHORT if wait_s < abandon_short_s else Outcome.ABANDONED


class ClosedBy(StrEnum):
    """Why a call record was closed (``CallRecord.closed_by``); ``open`` for snapshots of live calls."""

    HANGUP = "hangup"
    GAP = "gap"
    EOF = "eof"
    SHUTDOWN = "shutdown"
    STALE = "stale"
    QUEUE_LOG = "queue_log"  # rebuilt from an imported queue_log, not seen live
    OPEN = "open"


#: Closes that may be superseded by a later, better record of the same call (it was not seen to its hang-up).
PROVISIONAL_CLOSES: tuple[str, ...] = (ClosedBy.SHUTDOWN.value, ClosedBy.GAP.value, ClosedBy.EOF.value,
                                       ClosedBy.STALE.value)


# -- surveys ---------------------------------------------------------------------------------------


class CsatStatus(StrEnum):
    """``Survey.status``: the dialplan ``UserEvent: CSAT`` Status vocabulary (AGI results are mapped onto it)."""

    OK = "OK"
    INVALID = "INVALID"
    NOINPUT = "NOINPUT"


class SurveyStatus(StrEnum):
    """The survey server's result statuses (AGI and callback surveys; ``SurveyResultRecord.status``)."""

    COMPLETED = "completed"
    PARTIAL = "partial"
    NO_INPUT = "no_input"
    INVALID = "invalid"
    HANGUP = "hangup"
    DECLINED = "declined"
    NOT_ELIGIBLE = "not_eligible"
    UNREACHABLE = "unreachable"  # only callback surveys whose originate failed every attempt


#: Survey-server statuses that carry a CSAT answer.
ANSWERED_SURVEY: frozenset[str] = frozenset({SurveyStatus.COMPLETED.value, SurveyStatus.PARTIAL.value})
#: Survey-server status -> the core ``Survey.status`` (others are upper-cased), so reports count both alike.
CORE_STATUS: dict[str, str] = {
    SurveyStatus.COMPLETED.value: CsatStatus.OK.value, SurveyStatus.PARTIAL.value: CsatStatus.OK.value,
    SurveyStatus.NO_INPUT.value: CsatStatus.NOINPUT.value, SurveyStatus.INVALID.value: CsatStatus.INVALID.value,
}
#: ``UserEvent: CSAT`` Status -> survey result label (a dialplan survey counts like an AGI one).
RESULT_OF_CSAT_STATUS: dict[str, str] = {
    CsatStatus.OK.value: SurveyStatus.COMPLETED.value, CsatStatus.NOINPUT.value: SurveyStatus.NO_INPUT.value,
    CsatStatus.INVALID.value: SurveyStatus.INVALID.value,
}

CSAT_MIN, CSAT_MAX = 1, 5
CSAT_SATISFIED = 4  # CSAT "satisfied" = a score of 4 or 5 (top-two-box)
NPS_MIN, NPS_MAX = 0, 10
CES_MIN, CES_MAX = 1, 5
#: CSAT score labels, "1".."5".
CSAT_SCORES: tuple[str, ...] = tuple(str(i) for i in range(CSAT_MIN, CSAT_MAX + 1))


def valid_csat(score: int | None) -> bool:
    """True for a CSAT answer 1..5 (the dialplan's ``Read(CSAT,beep,1,,1,5)``); False for None or out of range."""
    return score is not None and CSAT_MIN <= score <= CSAT_MAX


def parse_csat(raw: str) -> int | None:
    """``"4"`` -> 4; None for empty, non-decimal or out-of-range text (a UserEvent ``Score`` header)."""
    raw = raw.strip()
    if not raw.isdecimal():  # isdecimal, not isdigit: int("²") raises
        return None
    score = int(raw)
    return score if valid_csat(score) else None


def valid_nps(score: int | None) -> bool:
    """True for a Net Promoter answer 0..10."""
    return score is not None and NPS_MIN <= score <= NPS_MAX


def nps_bucket(score: int) -> str:
    """NPS bucket of a valid answer: ``promoter`` 9-10, ``passive`` 7-8, ``detractor`` 0-6."""
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def valid_ces(score: int | None) -> bool:
    """True for a customer-effort answer 1..5."""
    return score is not None and CES_MIN <= score <= CES_MAX


# -- skips -----------------------------------------------------------------------------------------


class SkipReason(StrEnum):
    """Why an AMI message was not used (the ``reason`` label of ``qmon_ami_skipped_events_total``).

    ``MISSING``, ``BAD_INT`` and ``ILLEGAL`` are prefixes: see :func:`skip_reason` for the full, bounded label.
    """

    MISSING = "missing"  # missing:<Event>.<Header>: a required header absent or empty
    BAD_INT = "bad_int"  # bad_int:<Event>.<Header>: a required number that is not one
    ILLEGAL = "illegal"  # illegal:<input>@<segment state>: an event a queue segment cannot take in that state
    NORMALISE_ERROR = "normalise_error"  # a bug in the normaliser (logged with its traceback)
    TRACKER_ERROR = "tracker_error"  # a bug in the tracker (logged with its traceback)
    LATE = "late"  # late:<Event>: it arrived after its call's record was final (the stored record is amended)
    UNSUPPORTED = "unsupported"  # unsupported:<Event>: an event of Asterisk 11 or older (Join, Leave, Link...)
    UNPARSEABLE = "unparseable"  # a block on the AMI connection that is no AMI message (no Event/Response/ActionID)
    OVERSIZED = "oversized"  # no message boundary within MAX_MESSAGE_BYTES: the bytes were dropped


def skip_reason(kind: SkipReason, detail: str = "") -> str:
    """The label: ``skip_reason(SkipReason.MISSING, "QueueCallerJoin.Queue")`` -> ``missing:QueueCallerJoin.Queue``."""
    return f"{kind.value}:{detail}" if detail else kind.value
