"""The Celery app the benchmark's workers load (`celery -A celery_app worker`).

Redis is both broker and result backend (`BENCH_REDIS_URL`). Configured for at-least-once,
the closest Celery gets to pweza's guarantee: acks_late (a task is acknowledged after it
ran, not when received) and reject_on_worker_lost (a task whose worker process died is
given back to the queue). Redis hands an unacknowledged message out again only after
`visibility_timeout`, set to 30 s here to match pweza's default lease (Celery's own
default is 1 hour), and only when a worker sweeps for such messages: every
`unacked_restore_interval * unacked_restore_throttle` seconds (10 * 10 by default), set to
every second here so that the visibility timeout alone decides.
"""

from __future__ import annotations

import os

import work
from celery import Celery

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
VISIBILITY_TIMEOUT = float(os.environ.get("BENCH_VISIBILITY_TIMEOUT", "30"))

app = Celery("bench", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    broker_transport_options={
        "visibility_timeout": VISIBILITY_TIMEOUT,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    },
    result_backend_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.stamp")
def stamp() -> float:
    return work.stamp()


@app.task(name="bench.step")
def step(v: int, ms: float = 0.0, log: str | None = None) -> int:
    return work.step(v, ms, log)


@app.task(name="bench.item")
def item(i: int) -> int:
    return work.item(i)


@app.task(name="bench.total")
def total(values: list[int]) -> int:
    return sum(values)
