"""Owed callbacks: unanswered calls whose caller is owed a call, open until the number reaches an agent.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create ``owed_calls`` and its indexes."""
    op.create_table(
        "owed_calls",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("pbx", sa.String(length=64), nullable=False),
        sa.Column("linkedid", sa.String(length=80), nullable=False),
        sa.Column("caller", sa.String(length=128), nullable=False),
        sa.Column("queue", sa.String(length=128), nullable=True),
        sa.Column("start_ts", sa.Double(), nullable=False),
        sa.Column("ended_ts", sa.Double(), nullable=False),
        sa.Column("wait_s", sa.Double(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("voicemail", sa.Boolean(), nullable=False),
        sa.Column("closed_ts", sa.Double(), nullable=True),
        sa.Column("closed_by", sa.String(length=16), nullable=True),
        sa.Column("agent", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_owed_calls")),
        sa.UniqueConstraint("pbx", "linkedid", name=op.f("uq_owed_calls_pbx_linkedid")),
    )
    op.create_index("ix_owed_calls_ended_ts", "owed_calls", ["ended_ts"])
    op.create_index("ix_owed_calls_closed_ts", "owed_calls", ["closed_ts"])
    op.create_index("ix_owed_calls_caller", "owed_calls", ["caller"])


def downgrade() -> None:
    """Drop ``owed_calls``."""
    op.drop_table("owed_calls")
