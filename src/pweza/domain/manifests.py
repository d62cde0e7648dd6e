"""The `pweza.ai/v1` objects: one pydantic model per kind, the single source of truth.

The same models validate files given to `pweza apply`, bodies sent to the REST API and,
through the generated CRDs, objects sent to a kube-apiserver. Field names are the
camelCase of the YAML; unknown fields are refused so that a typo names its path.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from pweza.domain.durations import Duration

API_VERSION = "pweza.ai/v1"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
Name = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]


class SpecModel(BaseModel):
    """Strict camelCase model: the YAML spelling is the only one accepted from users."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class ObjectMeta(BaseModel):
    """The part of Kubernetes' ObjectMeta we use; server-set fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: Name
    namespace: Name = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None


class EnvVar(SpecModel):
    name: str = Field(min_length=1, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
    value: str = ""


Quantity = Annotated[str | int, Field(description="a Kubernetes quantity, e.g. 500m, 2, 1Gi")]


class Resources(SpecModel):
    """Container resources, as in a pod spec (cpu, memory, or any other resource name)."""

    requests: dict[str, Quantity] | None = None
    limits: dict[str, Quantity] | None = None


RuntimeKind = Literal["python", "http", "shell", "llm"]

# Which settings each runtime kind needs and which it accepts.
_RUNTIME_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "python": ({"handler"}, {"handler", "pythonPath"}),
    "http": ({"url"}, {"url", "headers"}),
    "shell": ({"command"}, {"command", "workingDir"}),
    "llm": ({"baseUrl", "model"}, {"baseUrl", "model", "prompt", "apiKeyEnv", "temperature"}),
}


class Runtime(SpecModel):
    """How an agent of this template executes a task.

    One flat object (not a union) keeps the CRD schema structural; the validator
    checks that the settings match the kind.
    """

    kind: RuntimeKind
    handler: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
        description="python: 'package.module:callable'",
    )
    python_path: list[Annotated[str, Field(min_length=1, max_length=4096)]] | None = Field(
        default=None,
        max_length=32,
        description="python: folders put first on the handler's import path (sys.path); `pweza apply` and "
        "`pweza up -f` make relative ones absolute from the manifest file's folder, otherwise they count "
        "from the agent's working directory (on Kubernetes: paths inside the agent image)",
    )
    url: str | None = Field(default=None, pattern=r"^https?://", description="http: endpoint")
    headers: dict[str, str] | None = None
    command: list[str] | None = Field(default=None, min_length=1, description="shell: argv")
    working_dir: str | None = None
    base_url: str | None = Field(default=None, pattern=r"^https?://", description="llm: OpenAI-compatible base URL")
    model: str | None = None
    prompt: str | None = Field(default=None, description="llm: system prompt")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="llm: env var with the key")
    temperature: float | None = Field(default=None, ge=0, le=2)

    @model_validator(mode="after")
    def _settings_match_kind(self) -> Runtime:
        required, allowed = _RUNTIME_FIELDS[self.kind]
        given = {
            to_camel(name)
            for name in self.model_fields_set
            if name not in ("kind", "api_key_env") and getattr(self, name) is not None
        }
        missing = sorted(required - given)
        if missing:
            raise ValueError(f"runtime kind {self.kind!r} needs {', '.join(missing)}")
        extra = sorted(given - allowed)
        if extra:
            raise ValueError(
                f"{', '.join(extra)} not allowed for runtime kind {self.kind!r} (allowed: {', '.join(sorted(allowed))})"
            )
        return self


class RetryPolicy(SpecModel):
    limit: int = Field(default=3, ge=0, le=100, description="retries after the first attempt")
    backoff: Duration = "1s"
    factor: float = Field(default=2.0, ge=1.0, le=10.0)
    max_backoff: Duration = "5m"
    non_retryable: list[str] = Field(default_factory=list, description="error types never retried")


class AgentTemplateSpec(SpecModel):
    runtime: Runtime
    concurrency: int = Field(default=1, ge=1, le=1000)
    capabilities: list[str] = Field(default_factory=list)
    timeout: Duration = "5m"
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    image: str | None = None
    resources: Resources | None = None
    environment: list[EnvVar] = Field(default_factory=list)


class PodOverrides(SpecModel):
    """The seed's `AgentPool.spec.template`: overrides of the template's pod settings."""

    image: str | None = None
    resources: Resources | None = None
    environment: list[EnvVar] = Field(default_factory=list)


class Scaling(SpecModel):
    min_replicas: int = Field(default=1, ge=1, le=100)
    max_replicas: int = Field(default=1, ge=1, le=100)
    target_utilization: int = Field(default=70, ge=1, le=100)

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Scaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas ({self.min_replicas}) must not exceed maxReplicas ({self.max_replicas})")
        return self


class AgentPoolSpec(SpecModel):
    template_ref: Name
    template: PodOverrides = Field(default_factory=PodOverrides)
    scaling: Scaling = Field(default_factory=Scaling)
    replicas: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="desired agents; set by `kubectl scale` or an HPA through the scale subresource, "
        "kept within scaling.minReplicas..maxReplicas (default: minReplicas)",
    )

    @model_validator(mode="after")
    def _replicas_within_scaling(self) -> AgentPoolSpec:
        if self.replicas is not None and not self.scaling.min_replicas <= self.replicas <= self.scaling.max_replicas:
            raise ValueError(
                f"replicas: {self.replicas} is outside scaling.minReplicas..maxReplicas "
                f"({self.scaling.min_replicas}..{self.scaling.max_replicas})"
            )
        return self

    @property
    def desired_replicas(self) -> int:
        return self.replicas if self.replicas is not None else self.scaling.min_replicas


class Manifest(SpecModel):
    api_version: Literal["pweza.ai/v1"] = "pweza.ai/v1"
    metadata: ObjectMeta
    status: dict[str, Any] | None = None

    @property
    def kind_name(self) -> str:
        return str(type(self).model_fields["kind"].default)

    @property
    def key(self) -> tuple[str, str]:
        return (self.metadata.namespace, self.metadata.name)


class AgentTemplate(Manifest):
    kind: Literal["AgentTemplate"] = "AgentTemplate"
    spec: AgentTemplateSpec


class AgentPool(Manifest):
    kind: Literal["AgentPool"] = "AgentPool"
    spec: AgentPoolSpec


def merged_environment(template: AgentTemplateSpec, pool: AgentPoolSpec) -> list[EnvVar]:
    """The template's environment with the pool's entries replacing same-named ones."""
    merged = {env.name: env for env in template.environment}
    merged.update({env.name: env for env in pool.template.environment})
    return list(merged.values())
