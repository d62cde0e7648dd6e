"""Manager settings: defaults, then the YAML file, then the environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pweza.domain.errors import InvalidInput
from pweza.domain.kinds import validation_problem
from pweza.domain.manifests import PoolBudget
from pweza.domain.safe_yaml import load_one

DEFAULT_CONFIG_PATH = Path("/etc/pweza-core/config.yaml")

# Environment variables of the seed's Deployment and Helm chart, mapped to settings.
ENV_NAMES = {
    "DATABASE_URL": "database_url",
    "LOG_LEVEL": "log_level",
    "METRICS_ENABLED": "metrics_enabled",
    "HTTP_PORT": "http_port",
    "GRPC_PORT": "grpc_port",
    "METRICS_PORT": "metrics_port",
    "TLS_CERT_FILE": "tls_cert_file",
    "TLS_KEY_FILE": "tls_key_file",
}


# A namespace's name, or "*": every namespace not named.
NamespaceKey = Annotated[str, Field(pattern=r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$", max_length=63)]


class Budgets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespaces: dict[NamespaceKey, PoolBudget] = Field(
        default_factory=dict,
        description="per namespace: {tokens, cost, currency, period} its model calls may use within each period; "
        '"*" for each namespace not named (each its own budget)',
    )


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    database_url: str = "sqlite:///./pweza.db"
    host: str = Field(default="127.0.0.1", description="bind address; 0.0.0.0 in a pod")
    http_port: int = Field(default=8080, ge=0, le=65535)
    grpc_port: int = Field(default=9090, ge=0, le=65535)
    metrics_port: int = Field(default=2112, ge=0, le=65535)
    metrics_enabled: bool = True
    model_status_probes: bool = Field(
        default=True, description="whether reading a ModelConfig asks its endpoint for GET /models (its status)"
    )
    log_level: str = Field(default="INFO", pattern=r"(?i)^(debug|info|warning|error|critical)$")
    tls_cert_file: Path | None = None
    agent_log_dir: Path | None = Field(
        default=None, description="where `pweza up` keeps its agents' output, served by GET /agents/{id}/logs"
    )
    tls_key_file: Path | None = None
    lease_seconds: float = Field(default=30.0, gt=0)
    heartbeat_seconds: float = Field(default=5.0, gt=0)
    reaper_interval_seconds: float = Field(default=0.5, gt=0)
    max_payload_bytes: int = Field(default=1 << 20, ge=1024)
    cancel_grace_seconds: float = Field(default=10.0, ge=0)
    retention_seconds: float = Field(
        default=7 * 24 * 3600.0, ge=0, description="finished runs and tasks are deleted this long after; 0 keeps them"
    )
    retention_batch_size: int = Field(default=500, ge=1)
    retention_interval_seconds: float = Field(default=60.0, gt=0)
    replica_id: str = Field(
        default="",
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]*$",
        description="this manager's name among replicas on one PostgreSQL database; empty: host-pid-random",
    )
    replica_ttl_seconds: float = Field(
        default=15.0, gt=0, description="a replica silent this long is presumed dead; its work is taken over"
    )
    budgets: Budgets = Field(default_factory=Budgets, description="limits on model calls, per namespace")
    tool_discovery: bool = Field(
        default=True,
        description="list every ToolServer's tools for its status (connecting to its URL, running its command)",
    )

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert_file is not None and self.tls_key_file is not None


def load_settings(
    path: Path | None = None,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Read the config file if present, apply environment variables, then explicit overrides.

    Any setting can also be given as PWEZA_<NAME> (e.g. PWEZA_LEASE_SECONDS).
    """
    env = dict(os.environ if environ is None else environ)
    config_path = path or Path(env.get("PWEZA_CONFIG", DEFAULT_CONFIG_PATH))
    values: dict[str, Any] = {}
    if config_path.exists():
        loaded = load_one(config_path.read_bytes(), str(config_path)) or {}
        if not isinstance(loaded, dict):
            raise InvalidInput(f"{config_path}: expected a mapping of settings")
        values.update({key.replace("-", "_"): value for key, value in loaded.items()})
    for env_name, field in ENV_NAMES.items():
        if env.get(env_name):
            values[field] = env[env_name]
    for field in Settings.model_fields:
        env_name = f"PWEZA_{field.upper()}"
        if env.get(env_name):
            values[field] = env[env_name]
    values.update(overrides or {})
    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        raise validation_problem(error, prefix=str(config_path)) from None
