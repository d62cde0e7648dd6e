"""ModelConfigs' concurrency and rate limits, held in the store so they bind every agent and
manager replica together: one row per slot of a model's limits.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_slots",
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("model", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("lease", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("until", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("namespace", "model", "kind", "number"),
    )
    op.create_index("ix_model_slots_holder", "model_slots", ["holder", "lease"])


def downgrade() -> None:
    op.drop_index("ix_model_slots_holder", "model_slots")
    op.drop_table("model_slots")
