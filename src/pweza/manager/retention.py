"""Retention: runs and tasks are deleted `retention_seconds` after they finished.

Deletion goes in batches, each its own short transaction, so the writes of the running
system never wait long behind it; whatever one call leaves over, the next one takes.
"""

from __future__ import annotations

import structlog

from pweza.manager.config import Settings
from pweza.manager.metrics import Metrics
from pweza.store.protocol import Store

log = structlog.get_logger(__name__)


async def prune(
    store: Store,
    settings: Settings,
    now: float,
    max_batches: int = 20,
    *,
    metrics: Metrics | None = None,
) -> int:
    """Delete what finished more than `retention_seconds` before `now`, at most `max_batches` batches.

    Returns how many runs and tasks were deleted; nothing when retention is off (0 seconds).
    """
    if settings.retention_seconds <= 0:
        return 0
    before = now - settings.retention_seconds
    size = settings.retention_batch_size
    total = batches = 0
    more = False
    while batches < max_batches:
        deleted = await store.prune_finished(before, size)
        batches += 1
        total += deleted
        if metrics is not None and deleted:
            metrics.pruned.inc(deleted)
        # Runs and tasks are bounded by `size` each: a smaller sum means neither kind has more.
        more = deleted >= size
        if not more:
            break
    if total:
        log.info("pruned finished runs and tasks", deleted=total, batches=batches, before=before, more_left=more)
    return total
