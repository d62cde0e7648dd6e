"""The journal of `agent` attempts: each model and tool call, kept before its answer is used,
with the tokens it paid for where budgets count them (its namespace, pool and run).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("task_id", sa.String(128), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.Float, nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("pool", sa.String(63), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("task_id", "attempt", "position"),
    )
    op.create_index("ix_calls_run", "calls", ["run_id"])
    op.create_index("ix_calls_pool", "calls", ["namespace", "pool", "recorded_at"])


def downgrade() -> None:
    op.drop_index("ix_calls_pool", "calls")
    op.drop_index("ix_calls_run", "calls")
    op.drop_table("calls")
