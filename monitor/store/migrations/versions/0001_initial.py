"""Initial schema: calls, queue segments, ring-no-answers, transfers, surveys, agent state changes.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create every table and index."""
    # Long on purpose (house rule's exception): a migration is a flat list of table definitions, read top to
    # bottom against the models; splitting it would only scatter one schema over helpers.
    op.create_table(
        "agent_events",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("pbx", sa.String(length=64), nullable=False),
        sa.Column("queue", sa.String(length=128), nullable=False),
        sa.Column("member", sa.String(length=128), nullable=False),
        sa.Column("interface", sa.String(length=256), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=256), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_events")),
        sa.UniqueConstraint(
            "pbx",
            "queue",
            "interface",
            "change",
            "ts",
            name=op.f("uq_agent_events_pbx_queue_interface_change_ts"),
        ),
    )
    op.create_index("ix_agent_events_member_ts", "agent_events", ["member", "ts"], unique=False)
    op.create_index("ix_agent_events_ts", "agent_events", ["ts"], unique=False)
    op.create_table(
        "calls",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("pbx", sa.String(length=64), nullable=False),
        sa.Column("linkedid", sa.String(length=80), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("caller", sa.String(length=128), nullable=True),
        sa.Column("caller_name", sa.String(length=256), nullable=False),
        sa.Column("start_ts", sa.Double(), nullable=False),
        sa.Column("end_ts", sa.Double(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("closed_by", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("repeat_windows", sa.String(length=128), nullable=False),
        sa.Column("ping_pong", sa.Boolean(), nullable=False),
        sa.Column("vm_queue", sa.String(length=128), nullable=True),
        sa.Column("vm_reason", sa.String(length=32), nullable=True),
        sa.Column("vm_ts", sa.Double(), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint("pbx", "linkedid", name=op.f("uq_calls_pbx_linkedid")),
    )
    op.create_index("ix_calls_caller_start_ts", "calls", ["caller", "start_ts"], unique=False)
    op.create_index("ix_calls_pbx_call_id", "calls", ["pbx", "call_id"], unique=False)
    op.create_index("ix_calls_start_ts", "calls", ["start_ts"], unique=False)
    op.create_table(
        "call_segments",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("call_pk", PK, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(length=128), nullable=False),
        sa.Column("entered", sa.Boolean(), nullable=False),
        sa.Column("join_ts", sa.Double(), nullable=False),
        sa.Column("end_ts", sa.Double(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("exit_position", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("wait_s", sa.Double(), nullable=True),
        sa.Column("agent", sa.String(length=128), nullable=True),
        sa.Column("agent_uniqueid", sa.String(length=64), nullable=True),
        sa.Column("ring_s", sa.Integer(), nullable=True),
        sa.Column("talk_s", sa.Double(), nullable=True),
        sa.Column("completion", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_pk"], ["calls.id"], name=op.f("fk_call_segments_call_pk_calls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_segments")),
    )
    op.create_index("ix_call_segments_agent_join_ts", "call_segments", ["agent", "join_ts"], unique=False)
    op.create_index("ix_call_segments_call_pk", "call_segments", ["call_pk"], unique=False)
    op.create_index("ix_call_segments_queue_join_ts", "call_segments", ["queue", "join_ts"], unique=False)
    op.create_table(
        "ring_no_answers",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("call_pk", PK, nullable=False),
        sa.Column("segment_seq", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(length=128), nullable=False),
        sa.Column("agent", sa.String(length=128), nullable=False),
        sa.Column("ring_ms", sa.Integer(), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_pk"], ["calls.id"], name=op.f("fk_ring_no_answers_call_pk_calls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ring_no_answers")),
    )
    op.create_index("ix_ring_no_answers_agent_ts", "ring_no_answers", ["agent", "ts"], unique=False)
    op.create_index("ix_ring_no_answers_call_pk", "ring_no_answers", ["call_pk"], unique=False)
    op.create_index("ix_ring_no_answers_queue_ts", "ring_no_answers", ["queue", "ts"], unique=False)
    op.create_table(
        "surveys",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("call_pk", PK, nullable=False),
        sa.Column("caller", sa.String(length=128), nullable=True),
        sa.Column("queue", sa.String(length=128), nullable=True),
        sa.Column("agent", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("nps", sa.Integer(), nullable=True),
        sa.Column("ces", sa.Integer(), nullable=True),
        sa.Column("raw", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_pk"], ["calls.id"], name=op.f("fk_surveys_call_pk_calls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys")),
        sa.UniqueConstraint("call_pk", name=op.f("uq_surveys_call_pk")),
    )
    op.create_index("ix_surveys_agent_ts", "surveys", ["agent", "ts"], unique=False)
    op.create_index("ix_surveys_caller_ts", "surveys", ["caller", "ts"], unique=False)
    op.create_index("ix_surveys_queue_ts", "surveys", ["queue", "ts"], unique=False)
    op.create_index("ix_surveys_ts", "surveys", ["ts"], unique=False)
    op.create_table(
        "transfers",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("call_pk", PK, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("queue", sa.String(length=128), nullable=True),
        sa.Column("from_agent", sa.String(length=128), nullable=True),
        sa.Column("target", sa.String(length=256), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_pk"], ["calls.id"], name=op.f("fk_transfers_call_pk_calls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers")),
    )
    op.create_index("ix_transfers_call_pk", "transfers", ["call_pk"], unique=False)
    op.create_index("ix_transfers_queue_ts", "transfers", ["queue", "ts"], unique=False)


def downgrade() -> None:
    """Drop every table."""
    op.drop_table("transfers")
    op.drop_table("surveys")
    op.drop_table("ring_no_answers")
    op.drop_table("call_segments")
    op.drop_table("calls")
    op.drop_table("agent_events")
