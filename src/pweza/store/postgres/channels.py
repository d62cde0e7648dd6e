"""The NOTIFY channels replicas talk on, and sending on them.

A notification is sent in the same transaction as the change it announces, so it arrives
only once the change is committed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

PENDING_CHANNEL: Final = "pweza_pending"  # a pool has work: "namespace/pool"
DONE_CHANNEL: Final = "pweza_done"  # tasks finished: their ids
CANCEL_CHANNEL: Final = "pweza_cancel"  # a task's owner should cancel it: its id
DRAIN_CHANNEL: Final = "pweza_drain"  # an agent's replica should drain it: "agent-id grace-seconds"
FOLLOW_CHANNEL: Final = "pweza_follow"  # runs read live on a replica: "replica run-id" lines
REPLY_CHANNEL: Final = "pweza_reply"  # model reply pieces for those readers: JSON lines
CHANNELS: Final = (PENDING_CHANNEL, DONE_CHANNEL, CANCEL_CHANNEL, DRAIN_CHANNEL, FOLLOW_CHANNEL, REPLY_CHANNEL)
# NOTIFY payloads must stay under 8000 bytes; so must each relayed line (its sender cuts it).
_PAYLOAD_LIMIT: Final = 7900
LINE_LIMIT: Final = _PAYLOAD_LIMIT


def _chunks(items: Iterable[str]) -> list[str]:
    """Newline-joined payloads, each under NOTIFY's size limit."""
    payloads: list[str] = []
    current: list[str] = []
    size = 0
    for item in items:
        if current and size + len(item) + 1 > _PAYLOAD_LIMIT:
            payloads.append("\n".join(current))
            current, size = [], 0
        current.append(item)
        size += len(item) + 1
    if current:
        payloads.append("\n".join(current))
    return payloads


async def notify(connection: AsyncConnection, channel: str, items: Iterable[str]) -> None:
    """Send `items` on `channel`, newline-separated, in as few notifications as fit."""
    for payload in _chunks(items):
        await connection.execute(select(func.pg_notify(channel, payload)))


def pool_payload(namespace: str, pool: str) -> str:
    return f"{namespace}/{pool}"
