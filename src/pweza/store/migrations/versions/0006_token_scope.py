"""Tokens get a pool (agent tokens: the one pool they may serve) and an expiry.

Tokens made before keep working as they did: NULL pool (an agent token serves any pool) and
NULL expiry (never). `pweza token list` shows them so; revoke and re-create them to bind them.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("pool", sa.String(127)))
        batch.add_column(sa.Column("expires_at", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("pool")
