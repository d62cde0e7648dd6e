"""Journaled model calls get their cost (micro-units of a currency), computed from the price of
the ModelConfig that answered when the call was recorded, so a later price does not rewrite it;
and an index for namespace budgets.

Calls recorded before have no cost (NULL), as calls to a model without a price do.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("cost_micros", sa.BigInteger))
        batch.add_column(sa.Column("currency", sa.String(3)))
    op.create_index("ix_calls_namespace", "calls", ["namespace", "recorded_at"])


def downgrade() -> None:
    op.drop_index("ix_calls_namespace", "calls")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("currency")
        batch.drop_column("cost_micros")
