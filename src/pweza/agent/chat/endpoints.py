"""A ModelConfig as the agent uses it: the endpoint, its key read from where the config says."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pweza.domain.model_keys import key_variable

DEFAULT_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    base_url: str
    model: str
    # Kept out of repr (and so out of logs and tracebacks' locals shown by structlog).
    api_key: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict)
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    concurrency: int | None = None
    requests_per_minute: int | None = None

    @property
    def chat_url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


def endpoint_from(config: Mapping[str, Any]) -> Endpoint:
    """One `{"name", "spec", "timeoutSeconds"}` entry of a welcome's `runtime.models`."""
    name = str(config["name"])
    spec: Mapping[str, Any] = config["spec"]
    rate = spec.get("rateLimit") or {}
    variable = key_variable(name, spec)
    return Endpoint(
        name=name,
        base_url=str(spec["baseUrl"]),
        model=str(spec["model"]),
        api_key=(os.environ.get(variable) or None) if variable else None,
        headers={str(k): str(v) for k, v in (spec.get("headers") or {}).items()},
        temperature=spec.get("temperature"),
        max_tokens=spec.get("maxTokens"),
        timeout=float(config.get("timeoutSeconds") or DEFAULT_TIMEOUT_SECONDS),
        concurrency=spec.get("concurrency"),
        requests_per_minute=rate.get("requestsPerMinute"),
    )


def endpoints_from(configs: Sequence[Mapping[str, Any]]) -> list[Endpoint]:
    return [endpoint_from(config) for config in configs]
