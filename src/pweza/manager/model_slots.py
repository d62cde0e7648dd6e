"""ModelConfigs' concurrency and rate limits, held for every agent and manager replica at once.

Before each request to a model that has limits, the agent asks for room (a ModelSlot message
naming the ModelConfig, and how long it may wait). The manager reads the limits from the stored
ModelConfig (never from what the agent says), takes a slot of each kind it needs in the store
(`pweza.domain.model_slots`) and answers with a lease; the agent releases the lease when its
request ends. With no room, the manager waits for some, at most as long as the agent may wait:
a release on this replica wakes the wait at once, one on another replica is seen within
`POLL_SECONDS`. When the wait runs out the answer is ModelBusy, and the agent tries the
model's next fallback, as it would after a 429.

A call slot is held at most the model's timeout past its start (plus `GRACE_SECONDS`), so one
whose agent or replica died frees itself; the slots of a session whose stream ends are freed
at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import structlog

from pweza.domain.durations import parse_duration
from pweza.domain.errors import Unavailable
from pweza.domain.model_slots import CALL, SlotClaim
from pweza.manager.budgets import JournalRefused
from pweza.manager.clock import Clock
from pweza.manager.metrics import Metrics
from pweza.manager.registry import Registry
from pweza.manager.sessions import AgentSession
from pweza.store.protocol import Store

log = structlog.get_logger(__name__)
POLL_SECONDS = 0.25
GRACE_SECONDS = 10.0
MAX_WAIT_SECONDS = 600.0  # a ModelConfig's timeout is at most this (domain.model_configs)
MAX_MODEL_NAME_CHARS = 63
DEFAULT_TIMEOUT = "60s"


class ModelBusy(JournalRefused):
    """No room within a model's limits in the time the agent could wait: it tries the next fallback."""

    error_type = "ModelBusy"


@dataclass(frozen=True, slots=True)
class Limits:
    concurrency: int | None
    per_minute: int | None
    timeout: float

    def describe(self) -> str:
        parts = []
        if self.concurrency is not None:
            parts.append(f"{self.concurrency} request(s) at once")
        if self.per_minute is not None:
            parts.append(f"{self.per_minute} per minute")
        return " and ".join(parts)


class ModelSlots:
    def __init__(self, store: Store, registry: Registry, metrics: Metrics, clock: Clock) -> None:
        self._store = store
        self._registry = registry
        self._metrics = metrics
        self._clock = clock
        self._freed: dict[tuple[str, str], asyncio.Event] = {}
        # The leases each session (by identity: a reconnect is another session) holds here.
        self._held: dict[int, dict[str, tuple[str, str]]] = defaultdict(dict)

    async def take(self, session: AgentSession, model: str, wait_seconds: float) -> list[dict[str, Any]]:
        """Room for one request of `session` to its namespace's ModelConfig `model`: the reply's
        records, `[{"lease": ...}]` ("" when the model has no limits); ModelBusy when none came."""
        if not model or len(model) > MAX_MODEL_NAME_CHARS:
            raise JournalRefused(f"a model slot names no ModelConfig, or one longer than {MAX_MODEL_NAME_CHARS}")
        limits = await self._limits(session.namespace, model)
        if limits is None:
            return [{"lease": ""}]
        lease = uuid.uuid4().hex
        key = (session.namespace, model)
        deadline = self._clock.monotonic() + max(0.0, min(wait_seconds, MAX_WAIT_SECONDS))
        waited = False
        while not await self._store.take_model_slots(self._claim(session, model, lease, limits)):
            left = deadline - self._clock.monotonic()
            if left <= 0:
                self._metrics.model_slot_refusals.labels(namespace=session.namespace, model_config=model).inc()
                raise ModelBusy(
                    f"ModelConfig {session.namespace}/{model} is at its limit of {limits.describe()} "
                    "across every agent and manager replica"
                )
            waited = True
            event = self._freed.setdefault(key, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(POLL_SECONDS, left))
        if waited:
            log.debug("model slot taken after a wait", agent=session.id, model=model)
        self._held[id(session)][lease] = key
        return [{"lease": lease}]

    def _claim(self, session: AgentSession, model: str, lease: str, limits: Limits) -> SlotClaim:
        now = self._clock.time()
        return SlotClaim(
            namespace=session.namespace, model=model, lease=lease, holder=session.id,
            concurrency=limits.concurrency, per_minute=limits.per_minute,
            hold_until=now + limits.timeout + GRACE_SECONDS, now=now,
        )  # fmt: skip

    async def _limits(self, namespace: str, model: str) -> Limits | None:
        stored = await self._registry.find("ModelConfig", namespace, model)
        if stored is None:
            return None  # the agent's own request will fail on it; nothing to hold room in
        spec = stored.body["spec"]
        concurrency = spec.get("concurrency")
        per_minute = (spec.get("rateLimit") or {}).get("requestsPerMinute")
        if concurrency is None and per_minute is None:
            return None
        return Limits(concurrency, per_minute, parse_duration(spec.get("timeout") or DEFAULT_TIMEOUT))

    async def release(self, session: AgentSession, lease: str) -> None:
        """The request under `lease` ended: its call slot is free (its start counts for the minute)."""
        key = self._held[id(session)].pop(lease, None)
        if key is None:
            return  # not a lease this session holds here: nothing of anyone else's is touched
        await self._free(session, [lease], {key})

    async def release_session(self, session: AgentSession) -> None:
        """The session's stream ended: the call slots it still holds are free."""
        held = self._held.pop(id(session), {})
        if not held:
            return
        await self._free(session, list(held), set(held.values()))

    async def _free(self, session: AgentSession, leases: list[str], models: set[tuple[str, str]]) -> None:
        try:
            await self._store.release_model_slots(session.id, leases, [CALL], self._clock.time())
        except Unavailable as error:  # the slots free themselves past their time
            log.warning("model slots not released", agent=session.id, error=str(error))
        for key in models:
            event = self._freed.pop(key, None)
            if event is not None:
                event.set()
