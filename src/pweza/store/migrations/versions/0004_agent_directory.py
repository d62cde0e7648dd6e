"""Which agents are connected to which manager replica, so any replica can list them all.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_directory",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("replica", sa.String(64), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("published_at", sa.Float, nullable=False),
    )
    op.create_index("ix_agent_directory_replica", "agent_directory", ["replica"])


def downgrade() -> None:
    op.drop_index("ix_agent_directory_replica", "agent_directory")
    op.drop_table("agent_directory")
