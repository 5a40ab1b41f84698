"""SQLAlchemy 2 models of stored call records (the schema itself is created by the Alembic migrations)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite only auto-increments an ``INTEGER PRIMARY KEY``; PostgreSQL gets a BIGINT identity.
PK = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a stable constraint naming convention (migrations refer to the names)."""

    metadata = MetaData(naming_convention=NAMING)


class Call(Base):
    """One inbound call (one Linkedid per PBX); times are epoch seconds, as in the records."""

    __tablename__ = "calls"
    __table_args__ = (
        UniqueConstraint("pbx", "linkedid"),
        Index("ix_calls_pbx_call_id", "pbx", "call_id"),
        Index("ix_calls_start_ts", "start_ts"),
        Index("ix_calls_caller_start_ts", "caller", "start_ts"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    pbx: Mapped[str] = mapped_column(String(64))
    linkedid: Mapped[str] = mapped_column(String(80))  # ``ql:<callid>`` for calls imported from queue_log
    call_id: Mapped[str] = mapped_column(String(64))
    caller: Mapped[str | None] = mapped_column(String(128))  # normalised number or its HMAC (hex)
    caller_name: Mapped[str] = mapped_column(String(256), default="")
    start_ts: Mapped[float] = mapped_column(Double())
    end_ts: Mapped[float] = mapped_column(Double())
    outcome: Mapped[str] = mapped_column(String(32))
    closed_by: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16), default="ami")  # ami | queue_log
    repeat_windows: Mapped[str] = mapped_column(String(128), default="")  # comma-separated labels
    ping_pong: Mapped[bool] = mapped_column(Boolean(), default=False)
    vm_queue: Mapped[str | None] = mapped_column(String(128))
    vm_reason: Mapped[str | None] = mapped_column(String(32))
    vm_ts: Mapped[float | None] = mapped_column(Double())
    extra: Mapped[str | None] = mapped_column(Text())  # JSON

    segments: Mapped[list[SegmentRow]] = relationship(
        order_by="SegmentRow.seq", cascade="all, delete-orphan", passive_deletes=True, lazy="raise")
    ring_no_answers: Mapped[list[RingNoAnswerRow]] = relationship(
        order_by="RingNoAnswerRow.id", cascade="all, delete-orphan", passive_deletes=True, lazy="raise")
    transfers: Mapped[list[TransferRow]] = relationship(
        order_by="TransferRow.seq", cascade="all, delete-orphan", passive_deletes=True, lazy="raise")
    survey: Mapped[SurveyRow | None] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="raise")


class SegmentRow(Base):
    """One visit of a call to one queue."""

    __tablename__ = "call_segments"
    __table_args__ = (
        Index("ix_call_segments_call_pk", "call_pk"),
        Index("ix_call_segments_queue_join_ts", "queue", "join_ts"),
        Index("ix_call_segments_agent_join_ts", "agent", "join_ts"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    call_pk: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer())
    queue: Mapped[str] = mapped_column(String(128))
    entered: Mapped[bool] = mapped_column(Boolean())
    join_ts: Mapped[float] = mapped_column(Double())
    end_ts: Mapped[float | None] = mapped_column(Double())
    position: Mapped[int] = mapped_column(Integer())
    exit_position: Mapped[int] = mapped_column(Integer())
    outcome: Mapped[str] = mapped_column(String(32))
    wait_s: Mapped[float | None] = mapped_column(Double())
    agent: Mapped[str | None] = mapped_column(String(128))
    agent_uniqueid: Mapped[str | None] = mapped_column(String(64))
    ring_s: Mapped[int | None] = mapped_column(Integer())
    talk_s: Mapped[float | None] = mapped_column(Double())
    completion: Mapped[str | None] = mapped_column(String(16))


class RingNoAnswerRow(Base):
    """A member rang for a queue call and did not answer."""

    __tablename__ = "ring_no_answers"
    __table_args__ = (
        Index("ix_ring_no_answers_call_pk", "call_pk"),
        Index("ix_ring_no_answers_agent_ts", "agent", "ts"),
        Index("ix_ring_no_answers_queue_ts", "queue", "ts"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    call_pk: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    segment_seq: Mapped[int] = mapped_column(Integer())
    queue: Mapped[str] = mapped_column(String(128))
    agent: Mapped[str] = mapped_column(String(128))
    ring_ms: Mapped[int] = mapped_column(Integer())
    ts: Mapped[float] = mapped_column(Double())


class TransferRow(Base):
    """A blind or attended transfer of a queue call."""

    __tablename__ = "transfers"
    __table_args__ = (
        Index("ix_transfers_call_pk", "call_pk"),
        Index("ix_transfers_queue_ts", "queue", "ts"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    call_pk: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer())
    type: Mapped[str] = mapped_column(String(16))
    queue: Mapped[str | None] = mapped_column(String(128))
    from_agent: Mapped[str | None] = mapped_column(String(128))
    target: Mapped[str] = mapped_column(String(256))
    ts: Mapped[float] = mapped_column(Double())


class SurveyRow(Base):
    """The survey answer of a call (the caller is copied here for the per-caller cooldown lookup)."""

    __tablename__ = "surveys"
    __table_args__ = (
        UniqueConstraint("call_pk"),
        Index("ix_surveys_ts", "ts"),
        Index("ix_surveys_queue_ts", "queue", "ts"),
        Index("ix_surveys_agent_ts", "agent", "ts"),
        Index("ix_surveys_caller_ts", "caller", "ts"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    call_pk: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    caller: Mapped[str | None] = mapped_column(String(128))
    queue: Mapped[str | None] = mapped_column(String(128))
    agent: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32))
    score: Mapped[int | None] = mapped_column(Integer())
    nps: Mapped[int | None] = mapped_column(Integer())
    ces: Mapped[int | None] = mapped_column(Integer())
    raw: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    ts: Mapped[float] = mapped_column(Double())
    outcome: Mapped[str | None] = mapped_column(String(32))  # the survey server's status (completed, ...)


class SurveyResult(Base):
    """Every survey attempt as the survey server reported it (the API and the cooldown read these).

    ``call_key`` is the call's Linkedid (its Uniqueid when the Linkedid was unknown, "" when neither was):
    a result is the same result again when pbx, call_key, source and started_ts match. Whether it counts as
    the call's CSAT answer is decided in ``monitor.store.surveys`` (the call's ``surveys`` row).
    """

    __tablename__ = "survey_results"
    __table_args__ = (
        UniqueConstraint("pbx", "call_key", "source", "started_ts"),
        Index("ix_survey_results_ended_ts", "ended_ts"),
        Index("ix_survey_results_queue_ended_ts", "queue", "ended_ts"),
        Index("ix_survey_results_agent_ended_ts", "agent", "ended_ts"),
        Index("ix_survey_results_caller_ended_ts", "caller", "ended_ts"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    pbx: Mapped[str] = mapped_column(String(64))
    call_key: Mapped[str] = mapped_column(String(80))
    linkedid: Mapped[str | None] = mapped_column(String(80))
    uniqueid: Mapped[str | None] = mapped_column(String(64))
    caller: Mapped[str | None] = mapped_column(String(128))  # normalised number or its HMAC (hex)
    queue: Mapped[str | None] = mapped_column(String(128))
    agent: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32))  # completed | partial | ... | not_eligible | unreachable
    csat: Mapped[int | None] = mapped_column(Integer())
    nps: Mapped[int | None] = mapped_column(Integer())
    ces: Mapped[int | None] = mapped_column(Integer())
    raw: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))  # agi | callback
    reason: Mapped[str] = mapped_column(String(256))
    started_ts: Mapped[float] = mapped_column(Double())
    ended_ts: Mapped[float] = mapped_column(Double())


class AgentEvent(Base):
    """A member logged in or out, paused (with a reason) or unpaused."""

    __tablename__ = "agent_events"
    __table_args__ = (
        UniqueConstraint("pbx", "queue", "interface", "change", "ts"),
        Index("ix_agent_events_member_ts", "member", "ts"),
        Index("ix_agent_events_ts", "ts"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    pbx: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(128))
    member: Mapped[str] = mapped_column(String(128))
    interface: Mapped[str] = mapped_column(String(256))
    change: Mapped[str] = mapped_column(String(16))  # login | logout | pause | unpause
    reason: Mapped[str] = mapped_column(String(256), default="")
    source: Mapped[str] = mapped_column(String(16), default="ami")
    ts: Mapped[float] = mapped_column(Double())


class OwedCallRow(Base):
    """An unanswered call owed a callback (``monitor.core.owed``): open while ``closed_ts`` is NULL."""

    __tablename__ = "owed_calls"
    __table_args__ = (
        UniqueConstraint("pbx", "linkedid"),
        Index("ix_owed_calls_ended_ts", "ended_ts"),
        Index("ix_owed_calls_closed_ts", "closed_ts"),
        Index("ix_owed_calls_caller", "caller"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    pbx: Mapped[str] = mapped_column(String(64))
    linkedid: Mapped[str] = mapped_column(String(80))
    caller: Mapped[str] = mapped_column(String(128))  # the number to call back, or its HMAC when hashed
    queue: Mapped[str | None] = mapped_column(String(128))
    start_ts: Mapped[float] = mapped_column(Double())
    ended_ts: Mapped[float] = mapped_column(Double())
    wait_s: Mapped[float] = mapped_column(Double())
    outcome: Mapped[str] = mapped_column(String(32))
    voicemail: Mapped[bool] = mapped_column(Boolean(), default=False)
    closed_ts: Mapped[float | None] = mapped_column(Double())
    closed_by: Mapped[str | None] = mapped_column(String(16))  # inbound | outbound
    agent: Mapped[str | None] = mapped_column(String(128))
