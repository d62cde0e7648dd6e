"""A ModelConfig's status in the embedded manager: is its endpoint reachable, which models it lists.

Asked on read (`GET /api/v1/modelconfigs`, `pweza get mc`) and remembered for a while, so a
listing costs at most one `GET {baseUrl}/models` per object per interval, all at once and each
bounded by a short timeout. A manager whose writers must not make it send requests to URLs of
their choosing turns this off (`model_status_probes: false`). The key comes from the manager's
environment, as the agent's does from its own (embedded, they share it); it is sent, never
shown: an error says the status and the URL only.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import httpx

from pweza.domain.model_keys import key_variable
from pweza.domain.records import StoredObject

CHECK_EVERY_SECONDS = 30.0
PROBE_TIMEOUT_SECONDS = 3.0
_TAIL = 200


def _stamp(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


class ModelStatus:
    def __init__(
        self,
        *,
        enabled: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.enabled = enabled
        self._transport = transport
        self._clock = clock
        # (namespace, name, generation) -> (checked at, status)
        self._known: dict[tuple[str, str, int], tuple[float, dict[str, Any]]] = {}
        self._last_error: dict[tuple[str, str], str] = {}

    async def _probe(self, stored: StoredObject) -> dict[str, Any]:
        spec = stored.body["spec"]
        url = str(spec["baseUrl"]).rstrip("/") + "/models"
        headers = {str(k): str(v) for k, v in (spec.get("headers") or {}).items()}
        variable = key_variable(stored.name, spec)
        key = os.environ.get(variable) if variable else None
        if key:
            headers["authorization"] = f"Bearer {key}"
        status: dict[str, Any] = {"checkedAt": _stamp(self._clock())}
        try:
            async with httpx.AsyncClient(transport=self._transport, timeout=PROBE_TIMEOUT_SECONDS) as client:
                response = await client.get(url, headers=headers)
            if response.status_code >= 400:
                raise ValueError(f"GET {url} returned {response.status_code}: {response.text[-_TAIL:]}")
            listed = response.json().get("data") or []
            status.update(reachable=True, models=[str(m.get("id")) for m in listed if isinstance(m, dict)])
        except (httpx.HTTPError, ValueError, AttributeError) as error:
            reason = str(error) if isinstance(error, ValueError) else f"GET {url}: {type(error).__name__}"
            self._last_error[(stored.namespace, stored.name)] = reason
            status.update(reachable=False, models=[])
        last = self._last_error.get((stored.namespace, stored.name))
        if last is not None:
            status["lastError"] = last
        return status

    async def _status(self, stored: StoredObject) -> dict[str, Any]:
        key = (stored.namespace, stored.name, stored.generation)
        known = self._known.get(key)
        if known is not None and self._clock() - known[0] < CHECK_EVERY_SECONDS:
            return known[1]
        status = await self._probe(stored)
        self._known[key] = (self._clock(), status)
        return status

    async def with_status(self, objects: list[StoredObject]) -> list[StoredObject]:
        """The ModelConfigs with their `status`; other kinds as they are."""
        configs = [o for o in objects if o.kind == "ModelConfig"] if self.enabled else []
        statuses = dict(zip(map(id, configs), await asyncio.gather(*map(self._status, configs)), strict=True))
        return [
            StoredObject(o.kind, o.namespace, o.name, o.generation, {**o.body, "status": statuses[id(o)]},
                         o.created_at, o.updated_at) if id(o) in statuses else o
            for o in objects
        ]  # fmt: skip
