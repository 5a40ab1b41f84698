"""What the tracker produces: immutable call records and live notes.

A :class:`CallRecord` is one inbound call (one Linkedid) with one :class:`Segment` per queue visit. Notes
(``*Note``) are emitted the moment something happens so that live counters need not wait for hang-up.
Records round-trip through plain dicts (``to_dict``/``record_from_dict``) for the journal and the API.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from monitor.core.vocab import (
    CORE_STATUS,
    RESULT_OF_CSAT_STATUS,
    SEGMENT_OUTCOMES,
    VOICEMAIL_REASONS,
    SurveyStatus,
)

#: Segment outcomes, in queue_log vocabulary (``unknown`` only when the event stream had a gap); the
#: vocabulary itself is :class:`monitor.core.vocab.Outcome`.
OUTCOMES = SEGMENT_OUTCOMES
#: Outcomes after which a call may fall through to VoiceMail.
UNANSWERED_FOR_VOICEMAIL = frozenset(VOICEMAIL_REASONS)


@dataclass(frozen=True, slots=True)
class RingNoAnswer:
    """A member rang and did not answer."""

    agent: str
    ring_ms: int
    ts: float


@dataclass(frozen=True, slots=True)
class Segment:
    """One visit of a call to one queue."""

    queue: str
    entered: bool  # False for join_empty: Queue() refused the call, queue_log has no ENTERQUEUE
    join_ts: float
    end_ts: float | None
    position: int
    exit_position: int
    outcome: str  # an Outcome value
    wait_s: float | None
    agent: str | None = None
    agent_uniqueid: str | None = None
    ring_s: int | None = None
    talk_s: float | None = None
    completion: str | None = None  # agent | caller | transfer (AgentComplete.Reason)
    ring_no_answers: tuple[RingNoAnswer, ...] = ()


@dataclass(frozen=True, slots=True)
class Transfer:
    """A blind or attended transfer of a queue call by the member who had it."""

    type: str  # blind | attended
    queue: str | None
    from_agent: str | None
    to: str
    ts: float


@dataclass(frozen=True, slots=True)
class Voicemail:
    """The call left a queue unanswered and reached VoiceMail."""

    queue: str
    reason: str  # one of VOICEMAIL_REASONS: timeout | exit_empty | join_empty | exit_key
    ts: float


@dataclass(frozen=True, slots=True)
class Survey:
    """A post-call survey answer; ``status`` is a CsatStatus (OK, INVALID, NOINPUT) or an upper-cased survey status."""

    queue: str | None
    agent: str | None
    status: str
    score: int | None
    raw: str
    source: str  # userevent | agi | callback
    ts: float
    nps: int | None = None
    ces: int | None = None
    outcome: str | None = None  # the survey server's detailed status (completed, partial, hangup, ...)


STATUSES: tuple[str, ...] = tuple(v.value for v in SurveyStatus)
"""The one survey status vocabulary (answers, notes, metric labels, the API): :class:`SurveyStatus`."""
NOT_ASKED = frozenset({SurveyStatus.NOT_ELIGIBLE.value, SurveyStatus.UNREACHABLE.value})
"""Statuses of attempts where the caller was never asked: never a call's survey, never a cooldown."""


@dataclass(frozen=True, slots=True)
class SurveyResultRecord:
    """One survey answer (any status, AGI or callback): the one type from the survey server to the store."""

    linkedid: str | None
    uniqueid: str | None  # the caller channel's Uniqueid (the call id)
    caller: str | None
    queue: str | None
    agent: str | None
    status: str  # one of STATUSES
    csat: int | None
    nps: int | None
    ces: int | None
    raw: str
    language: str
    source: str  # agi | callback
    started_ts: float
    ended_ts: float
    reason: str = "ok"  # the policy reason when not_eligible, else ok / the failure detail

    def to_survey(self) -> Survey:
        """The :class:`Survey` a call record carries (status in the call's UserEvent vocabulary)."""
        status = CORE_STATUS.get(self.status, self.status.upper())
        return Survey(self.queue, self.agent, status, self.csat, self.raw, self.source, self.ended_ts,
                      self.nps, self.ces, self.status)


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One inbound call from its first queue entry to the hang-up of its caller channel."""

    linkedid: str
    call_id: str  # Uniqueid of the channel that entered the queue (= queue_log callid)
    caller: str | None  # normalised caller number; None when withheld/unknown
    caller_name: str
    start_ts: float
    end_ts: float
    segments: tuple[Segment, ...]
    transfers: tuple[Transfer, ...] = ()
    voicemail: Voicemail | None = None
    survey: Survey | None = None
    repeat_windows: tuple[str, ...] = ()
    outcome: str = "unknown"  # answered (any segment), voicemail, else the last segment's outcome
    closed_by: str = "hangup"  # a ClosedBy value: hangup | gap | eof | shutdown | stale (open: a live snapshot)
    pbx: str = "default"
    ping_pong: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def entered(self) -> tuple[Segment, ...]:
        """Segments that entered a queue (queue_log ENTERQUEUE)."""
        return tuple(s for s in self.segments if s.entered)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole record."""
        return asdict(self)


def record_from_dict(d: dict[str, Any]) -> CallRecord:
    """Rebuild a :class:`CallRecord` from :meth:`CallRecord.to_dict` output."""
    segs = tuple(
        Segment(**{**s, "ring_no_answers": tuple(RingNoAnswer(**r) for r in s.get("ring_no_answers", ()))})
        for s in d.get("segments", ())
    )
    vm = d.get("voicemail")
    sv = d.get("survey")
    return CallRecord(
        **{
            **d,
            "segments": segs,
            "transfers": tuple(Transfer(**t) for t in d.get("transfers", ())),
            "voicemail": Voicemail(**vm) if vm else None,
            "survey": Survey(**sv) if sv else None,
            "repeat_windows": tuple(d.get("repeat_windows", ())),
            "extra": dict(d.get("extra") or {}),
        }
    )


# Live notes -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentNote:
    """A queue segment got its outcome (answered at connect time, abandoned at hang-up, ...)."""

    queue: str
    outcome: str
    wait_s: float | None
    agent: str | None
    ts: float


@dataclass(frozen=True, slots=True)
class RingNoAnswerNote:
    """A member did not answer."""

    queue: str
    agent: str
    ring_ms: int
    ts: float


@dataclass(frozen=True, slots=True)
class TalkNote:
    """A member finished a queue call (AgentComplete)."""

    queue: str
    agent: str
    talk_s: float
    reason: str
    ts: float


@dataclass(frozen=True, slots=True)
class TransferNote:
    """A queue call was transferred."""

    queue: str | None
    type: str
    ts: float
    first_in_segment: bool = True  # False for the 2nd+ transfer of the same answered segment


@dataclass(frozen=True, slots=True)
class VoicemailNote:
    """Voicemail fallthrough."""

    queue: str
    reason: str
    ts: float


@dataclass(frozen=True, slots=True)
class RepeatNote:
    """A call from a number that called before within these windows."""

    queue: str | None
    windows: tuple[str, ...]
    ts: float


@dataclass(frozen=True, slots=True)
class SurveyNote:
    """A survey answer arrived (dialplan UserEvent, AGI or callback), attached to its call when the tracker knows
    it; metrics count every answer from this one note, the store writes ``answer`` (survey server answers)."""

    queue: str | None
    agent: str | None
    result: str  # one of STATUSES
    csat: int | None
    ts: float
    source: str = "userevent"  # userevent | agi | callback
    nps: int | None = None
    ces: int | None = None
    answer: SurveyResultRecord | None = None  # the survey server's answer; None for a dialplan UserEvent

    @staticmethod
    def of_userevent(survey: Survey) -> SurveyNote:
        """The note of a dialplan UserEvent survey (its OK/NOINPUT/INVALID status in the one vocabulary)."""
        return SurveyNote(survey.queue, survey.agent, RESULT_OF_CSAT_STATUS.get(survey.status, "invalid"), survey.score,
                          survey.ts)

    @staticmethod
    def of_answer(answer: SurveyResultRecord, queue: str | None, agent: str | None) -> SurveyNote:
        """The note of a survey-server answer, counted under the call's queue and agent."""
        result = answer.status if answer.status in STATUSES else "invalid"
        return SurveyNote(queue, agent, result, answer.csat, answer.ended_ts, answer.source, answer.nps, answer.ces,
                          answer)


@dataclass(frozen=True, slots=True)
class MemberNote:
    """A queue member logged in or out, paused or unpaused."""

    queue: str
    member: str
    interface: str
    change: str  # login | logout | pause | unpause
    reason: str
    ts: float


@dataclass(frozen=True, slots=True)
class OwedCall:
    """One unanswered call owed a callback (times epoch s, PBX clock; ``wait_s`` seconds across its queues)."""

    pbx: str
    linkedid: str
    caller: str
    queue: str | None  # the queue where the call ended (its last segment)
    start_ts: float
    ended_ts: float
    wait_s: float
    outcome: str  # how its last queue segment ended: abandoned, abandoned_short, timeout, exit_empty, ...
    voicemail: bool = False  # the caller then reached VoiceMail
    closed_ts: float | None = None
    closed_by: str | None = None  # inbound | outbound
    agent: str | None = None  # who reached the caller

    @property
    def time_to_callback_s(self) -> float | None:
        """Seconds from the end of the call to the caller being reached; None while open."""
        return None if self.closed_ts is None else max(0.0, self.closed_ts - self.ended_ts)


@dataclass(frozen=True, slots=True)
class OwedNote:
    """An owed call opened (``open``) or closed (``close``): for the store (upsert) and metrics."""

    change: str
    call: OwedCall


@dataclass(frozen=True, slots=True)
class CallClosed:
    """A call ended; its record is final."""

    record: CallRecord


@dataclass(frozen=True, slots=True)
class CallAmended:
    """A late event changed a call whose record was already final: store it again (upsert by call id).

    Live counters already exported are not changed: metrics ignore this note; only storage takes it.
    """

    record: CallRecord


Note = (
    SegmentNote | RingNoAnswerNote | TalkNote | TransferNote | VoicemailNote | RepeatNote | SurveyNote
    | MemberNote | OwedNote | CallClosed | CallAmended
)
