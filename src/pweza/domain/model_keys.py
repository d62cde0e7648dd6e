"""Where an agent finds a Secret-backed model key: one name, shared by the operator and the agent.

Kept apart from the ModelConfig model so the agent reads it without loading pydantic.
"""

from __future__ import annotations


def secret_env_name(model_config: str) -> str:
    """The agent's environment variable holding the key of ModelConfig `model_config`'s secretKeyRef."""
    return "PWEZA_MODEL_KEY_" + model_config.upper().replace("-", "_")
