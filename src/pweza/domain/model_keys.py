"""Where an agent finds a Secret-backed model key: one name, shared by the operator and the agent.

Kept apart from the ModelConfig model so the agent reads it without loading pydantic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def secret_env_name(model_config: str) -> str:
    """The agent's environment variable holding the key of ModelConfig `model_config`'s secretKeyRef."""
    return "PWEZA_MODEL_KEY_" + model_config.upper().replace("-", "_")


def key_variable(model_config: str, spec: Mapping[str, Any]) -> str | None:
    """The environment variable a ModelConfig's key is read from (None: it has no key)."""
    where = spec.get("apiKey") or {}
    if where.get("env"):
        return str(where["env"])
    if where.get("secretKeyRef"):
        return secret_env_name(model_config)
    return None
