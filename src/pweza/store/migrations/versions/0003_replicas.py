"""Several manager replicas on one database: owners, leases, sequence blocks, retry policies.

A task or run being worked on is owned by one replica (`owner`); ownership moves only by a
conditional update, so a replica that lost a row can no longer write it. `leases` holds both
the replicas' liveness and the lease of the singleton duties; `counters` hands out blocks of
sequence numbers. Each task carries its own retry policy so any replica can decide a retry.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("owner", sa.String(64)))
        batch.add_column(sa.Column("retry", sa.Text))
    op.create_index("ix_tasks_owner", "tasks", ["owner"])
    op.create_index("ix_tasks_finished", "tasks", ["finished_at"])
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("owner", sa.String(64)))
    op.create_index("ix_runs_finished", "runs", ["finished_at"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
    )
    op.create_table(
        "counters",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("counters")
    op.drop_table("leases")
    op.drop_index("ix_runs_finished", "runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("owner")
    op.drop_index("ix_tasks_finished", "tasks")
    op.drop_index("ix_tasks_owner", "tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("retry")
        batch.drop_column("owner")
