"""The PostgreSQL backend, and what several manager replicas on one database need from it.

- `store`: the `Store` on SQLAlchemy Core and asyncpg; `writer`: its group-commit writer.
- `replicas`: `ReplicaDatabase`, the ownership, claims, leases and sequence blocks the replicas share.
- `channels` and `listener`: the NOTIFY channels they tell each other on, and receiving them.
"""

from __future__ import annotations

from pweza.store.postgres.channels import (
    CANCEL_CHANNEL,
    DONE_CHANNEL,
    DRAIN_CHANNEL,
    FOLLOW_CHANNEL,
    LINE_LIMIT,
    PENDING_CHANNEL,
    REPLY_CHANNEL,
)
from pweza.store.postgres.listener import Listener
from pweza.store.postgres.replicas import ReplicaDatabase
from pweza.store.postgres.store import PostgresStore
from pweza.store.postgres.urls import POOL_DEFAULTS

__all__ = [
    "CANCEL_CHANNEL",
    "DONE_CHANNEL",
    "DRAIN_CHANNEL",
    "FOLLOW_CHANNEL",
    "LINE_LIMIT",
    "PENDING_CHANNEL",
    "POOL_DEFAULTS",
    "REPLY_CHANNEL",
    "Listener",
    "PostgresStore",
    "ReplicaDatabase",
]
