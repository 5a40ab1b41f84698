"""Survey results: every survey attempt (callback, declined, not eligible, ...), not only the call's answer.

Also ``surveys.outcome``: the survey server's detailed status of a call's survey (``Survey.outcome``).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create ``survey_results`` and its indexes; add ``surveys.outcome``."""
    with op.batch_alter_table("surveys") as batch:
        batch.add_column(sa.Column("outcome", sa.String(length=32), nullable=True))
    op.create_table(
        "survey_results",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("pbx", sa.String(length=64), nullable=False),
        sa.Column("call_key", sa.String(length=80), nullable=False),
        sa.Column("linkedid", sa.String(length=80), nullable=True),
        sa.Column("uniqueid", sa.String(length=64), nullable=True),
        sa.Column("caller", sa.String(length=128), nullable=True),
        sa.Column("queue", sa.String(length=128), nullable=True),
        sa.Column("agent", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("csat", sa.Integer(), nullable=True),
        sa.Column("nps", sa.Integer(), nullable=True),
        sa.Column("ces", sa.Integer(), nullable=True),
        sa.Column("raw", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=256), nullable=False),
        sa.Column("started_ts", sa.Double(), nullable=False),
        sa.Column("ended_ts", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_results")),
        sa.UniqueConstraint(
            "pbx", "call_key", "source", "started_ts",
            name=op.f("uq_survey_results_pbx_call_key_source_started_ts"),
        ),
    )
    op.create_index("ix_survey_results_agent_ended_ts", "survey_results", ["agent", "ended_ts"], unique=False)
    op.create_index("ix_survey_results_caller_ended_ts", "survey_results", ["caller", "ended_ts"], unique=False)
    op.create_index("ix_survey_results_ended_ts", "survey_results", ["ended_ts"], unique=False)
    op.create_index("ix_survey_results_queue_ended_ts", "survey_results", ["queue", "ended_ts"], unique=False)


def downgrade() -> None:
    """Drop ``survey_results`` and ``surveys.outcome``."""
    op.drop_table("survey_results")
    with op.batch_alter_table("surveys") as batch:
        batch.drop_column("outcome")
