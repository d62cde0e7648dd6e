"""Index a pool's pending tasks in claim order (priority, highest first, then seq).

It replaces `ix_tasks_pool_state`, whose columns it starts with, so filtering tasks by pool and
state uses it as before, and a claim reads the first rows instead of sorting all pending ones.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_tasks_pool_state", "tasks")
    op.create_index("ix_tasks_claim", "tasks", ["namespace", "pool", "state", sa.text("priority DESC"), "seq"])


def downgrade() -> None:
    op.drop_index("ix_tasks_claim", "tasks")
    op.create_index("ix_tasks_pool_state", "tasks", ["namespace", "pool", "state"])
