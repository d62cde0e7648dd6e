"""The `pweza.ai/v1` objects: one pydantic model per kind, the single source of truth.

The same models validate files given to `pweza apply`, bodies sent to the REST API and,
through the generated CRDs, objects sent to a kube-apiserver. Field names are the
camelCase of the YAML; unknown fields are refused so that a typo names its path.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from pweza.domain.durations import Duration
from pweza.domain.pricing import MAX_BUDGET_COST, Currency, Money

API_VERSION = "pweza.ai/v1"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
Name = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]


class SpecModel(BaseModel):
    """Strict camelCase model: the YAML spelling is the only one accepted from users.

    A field's description is in the REST API's OpenAPI document and, through the generated CRDs,
    in `kubectl explain`, which also shows the bounds and default taken from the field itself: a
    description says what the field does. (Field(description=...) rather than docstrings under
    the fields: pydantic reads those from the source at import, which cost every command 0.2 s.)"""

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
    name: str = Field(min_length=1, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", description="The variable's name.")
    value: str = Field(default="", description="The variable's value.")


Quantity = Annotated[str | int, Field(description="a Kubernetes quantity, e.g. 500m, 2, 1Gi")]


class Resources(SpecModel):
    """Container resources, as in a pod spec (cpu, memory, or any other resource name)."""

    requests: dict[str, Quantity] | None = Field(
        default=None,
        description="What the agent's container is guaranteed, by resource name (e.g. cpu: 500m, memory: 256Mi).",
    )
    limits: dict[str, Quantity] | None = Field(
        default=None,
        description="The most the agent's container may use, by resource name.",
    )


RuntimeKind = Literal["python", "http", "shell", "llm", "agent"]

# Which settings each runtime kind needs and which it accepts.
_RUNTIME_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "python": ({"handler"}, {"handler", "pythonPath"}),
    "http": ({"url"}, {"url", "headers"}),
    "shell": ({"command"}, {"command", "workingDir"}),
    "llm": ({"baseUrl", "model"}, {"baseUrl", "model", "prompt", "apiKeyEnv", "temperature"}),
    "agent": ({"modelRef"}, {"modelRef", "systemPrompt", "maxTurns", "maxTokens", "temperature", "outputSchema"}),
}


class Runtime(SpecModel):
    """How an agent of this template executes a task.

    One flat object (not a union) keeps the CRD schema structural; the validator
    checks that the settings match the kind.
    """

    kind: RuntimeKind = Field(
        description=(
            "How a task is done: python calls `handler` in the agent's process; http POSTs the input as JSON to `url` "
            "and takes the JSON reply; shell runs `command` with the input as JSON on stdin and takes JSON from "
            "stdout; llm asks the chat completions API at `baseUrl`; agent runs a model loop (model calls, tool "
            "calls, until an answer) on the ModelConfig `modelRef`. Each kind needs its own fields and accepts no "
            "other kind's."
        ),
    )
    handler: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
        description="python (needed): the function that does a task, as 'package.module:callable'; it gets "
        "the task context and returns any JSON value.",
    )
    url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="http (needed): the endpoint each task's input is POSTed to; a 5xx answer or a failed "
        "connection is a retryable error.",
    )
    headers: dict[str, str] | None = Field(default=None, description="http: headers sent with every request, by name.")
    command: list[str] | None = Field(
        default=None,
        min_length=1,
        description="shell (needed): the program and its arguments, run without a shell.",
    )
    working_dir: str | None = Field(
        default=None,
        description="shell: the directory the command runs in (default: the agent's own).",
    )
    base_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="llm (needed): the base URL of an OpenAI-compatible API; requests go to its /chat/completions.",
    )
    model: str | None = Field(default=None, description="llm (needed): the model named in each request.")
    prompt: str | None = Field(default=None, description="llm: the system prompt sent before each task's input.")
    api_key_env: str = Field(
        default="OPENAI_API_KEY",
        description="llm: the environment variable of the agent that holds the API key (sent as a bearer token).",
    )
    temperature: float | None = Field(
        default=None,
        ge=0,
        le=2,
        description="llm, agent: the sampling temperature (default: the API's, or for agent the ModelConfig's).",
    )
    model_ref: Name | None = Field(
        default=None,
        description="agent (needed): the ModelConfig (same namespace) the agent's model calls go to; its "
        "fallbacks come with it.",
    )
    system_prompt: str | None = Field(default=None, description="agent: the system message that starts each task.")
    max_turns: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="agent: the most model calls of one attempt (default 8); the last one is offered no tools, "
        "so it gives an answer.",
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="agent: the most tokens one model reply may have (default: the ModelConfig's maxTokens).",
    )
    output_schema: dict[str, Any] | None = Field(
        default=None,
        description="agent: a JSON Schema the final answer must follow; the model is asked for it as structured "
        "output, the answer is checked and, when it does not follow it, asked for once more with the error.",
    )
    python_path: list[Annotated[str, Field(min_length=1, max_length=4096)]] | None = Field(
        default=None,
        max_length=32,
        description="python: folders put first on the handler's import path (sys.path); `pweza apply` and "
        "`pweza up -f` make relative ones absolute from the manifest file's folder, otherwise they count "
        "from the agent's working directory (on Kubernetes: paths inside the agent image).",
    )

    @field_validator("output_schema")
    @classmethod
    def _is_a_json_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is not None:
            # Imported here: only templates with a schema pay for it.
            from jsonschema import Draft202012Validator, SchemaError

            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as error:
                raise ValueError(f"not a JSON Schema: {error.message}") from None
        return schema

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
    limit: int = Field(
        default=3,
        ge=0,
        le=100,
        description="How many times a failed attempt is retried (retries after the first attempt; 0: never).",
    )
    backoff: Duration = Field(
        default="1s",
        description="The wait before the first retry, a duration such as 200ms, 30s or 1m30s.",
    )
    factor: float = Field(
        default=2.0,
        ge=1.0,
        le=10.0,
        description="Each further retry waits this many times longer than the one before.",
    )
    max_backoff: Duration = Field(
        default="5m",
        description="The longest wait between two attempts, however many retries came before (a duration).",
    )
    non_retryable: list[str] = Field(
        default_factory=list, description="Error types (a handler's TaskFailure type) that fail the task at once."
    )


# -- tools: what an `agent` runtime may call (ToolServers, other pools); see docs/agents.md "Tools" --
ToolName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")]


class ToolServerRef(SpecModel):
    """Tools of one ToolServer the template's agents may call."""

    tool_server: Name = Field(description="The ToolServer (in the template's namespace).")
    allow: list[ToolName] | None = Field(
        default=None,
        max_length=256,
        description="The only tools of the server the agents are shown and may call (default: all of them).",
    )
    require_approval: list[ToolName] = Field(
        default_factory=list,
        max_length=256,
        description="Tools whose every call waits for a person's approval before it runs.",
    )


class PoolToolRef(SpecModel):
    """Another AgentPool offered as a tool: a call becomes a durable delegated task on that pool."""

    pool: Name = Field(description="The AgentPool (in the template's namespace) that does the calls.")
    name: ToolName | None = Field(
        default=None, description="The tool's name as the model sees it (default: the pool's)."
    )
    description: str = Field(default="", max_length=4096, description="What the tool does, for the model.")
    input_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"},
        description="The JSON schema of the tool's arguments; the arguments are the delegated task's input.",
    )
    require_approval: bool = Field(default=False, description="Whether each call waits for a person's approval.")


class TemplateTools(SpecModel):
    servers: list[ToolServerRef] = Field(
        default_factory=list, max_length=64, description="ToolServers whose tools the agents may call."
    )
    agents: list[PoolToolRef] = Field(
        default_factory=list, max_length=64, description="AgentPools the agents may delegate to, each as one tool."
    )

    @model_validator(mode="after")
    def _unique(self) -> TemplateTools:
        seen: dict[str, str] = {}
        for index, ref in enumerate(self.servers):
            where = f"servers[{index}]"
            if ref.tool_server in seen:
                raise ValueError(
                    f"{where}.toolServer: {ref.tool_server!r} is listed twice (also {seen[ref.tool_server]})"
                )
            seen[ref.tool_server] = where
            unknown = sorted(set(ref.require_approval) - set(ref.allow)) if ref.allow is not None else []
            if unknown:
                raise ValueError(f"{where}.requireApproval: {', '.join(unknown)} not in allow")
        names: dict[str, str] = {}
        for index, agent in enumerate(self.agents):
            name = agent.name or agent.pool
            if name in names:
                raise ValueError(f"agents[{index}]: tool name {name!r} is used twice (also {names[name]})")
            names[name] = f"agents[{index}]"
        return self


class AgentTemplateSpec(SpecModel):
    runtime: Runtime = Field(description="How the template's agents do a task: the runtime kind and its settings.")
    concurrency: int = Field(default=1, ge=1, le=1000, description="How many tasks one agent works on at once.")
    capabilities: list[str] = Field(
        default_factory=list,
        description=(
            "Words for what these agents can do; a workflow step may ask for agents by capabilities instead of by pool "
            "(its pool is then any whose template offers all it asks for)."
        ),
    )
    timeout: Duration = Field(
        default="5m",
        description=(
            "How long one attempt of a task may take before it fails with Timeout and is cancelled on the agent (a "
            "duration such as 30s or 1h30m); a workflow step may set its own."
        ),
    )
    retry: RetryPolicy = Field(
        default_factory=RetryPolicy,
        description="What happens after a failed attempt; a workflow step may set its own.",
    )
    image: str | None = Field(
        default=None,
        description=(
            "On Kubernetes: the container image of the agents (default: the operator's pweza-core image). A pool's "
            "template.image replaces it."
        ),
    )
    resources: Resources | None = Field(
        default=None,
        description=(
            "On Kubernetes: the agent container's resource requests and limits. A pool's template.resources replaces "
            "them."
        ),
    )
    environment: list[EnvVar] = Field(
        default_factory=list,
        description=(
            "On Kubernetes: environment variables of the agent container. A pool's template.environment adds to them, "
            "replacing those of the same name."
        ),
    )
    tools: TemplateTools | None = Field(
        default=None,
        description="What an `agent` runtime may call as tools: ToolServers' tools (allow-listed) and other pools.",
    )


class PodOverrides(SpecModel):
    """The seed's `AgentPool.spec.template`: overrides of the template's pod settings."""

    image: str | None = Field(
        default=None,
        description="On Kubernetes: the container image of this pool's agents, instead of the template's.",
    )
    resources: Resources | None = Field(
        default=None,
        description="On Kubernetes: resource requests and limits of this pool's agents, instead of the template's.",
    )
    environment: list[EnvVar] = Field(
        default_factory=list,
        description="On Kubernetes: environment variables added to the template's, replacing those of the same name.",
    )


class Scaling(SpecModel):
    min_replicas: int = Field(
        default=1,
        ge=1,
        le=100,
        description="The fewest agents the pool runs; `pweza up` runs this many. At most maxReplicas.",
    )
    max_replicas: int = Field(
        default=1,
        ge=1,
        le=100,
        description=(
            "The most agents the pool runs. On Kubernetes, a value above minReplicas makes the operator create a "
            "HorizontalPodAutoscaler between the two."
        ),
    )
    target_utilization: int = Field(
        default=70,
        ge=1,
        le=100,
        description=(
            "On Kubernetes: the average CPU use, in percent of the agents' CPU request, that the autoscaler keeps the "
            "pool at."
        ),
    )

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Scaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas ({self.min_replicas}) must not exceed maxReplicas ({self.max_replicas})")
        return self


MAX_BUDGET_TOKENS = 10**12


class RunBudget(SpecModel):
    """A limit on what model calls use: tokens, cost or both, each enforced."""

    tokens: int | None = Field(
        default=None,
        ge=1,
        le=MAX_BUDGET_TOKENS,
        description="The most model tokens (prompt and completion) the calls may use (a run's: its delegated "
        "tasks included). A call is refused before it is made once they are used, or when its maxTokens would "
        "go past them; the task fails with BudgetExceeded, not retried.",
    )
    cost: Money | None = Field(
        default=None,
        gt=0,
        le=MAX_BUDGET_COST,
        description="The most the calls may cost, in currency, from the prices of the ModelConfigs that answered "
        "them. A call is refused once it is spent, when its maxTokens at the highest completion price among its "
        "model and fallbacks would go past it, or when one of those has no price in this currency.",
    )
    currency: Currency = Field(default="USD", description="The currency of cost (ISO 4217, such as USD).")

    @model_validator(mode="after")
    def _limits_something(self) -> RunBudget:
        if self.tokens is None and self.cost is None:
            raise ValueError("give tokens, cost or both")
        return self


class PoolBudget(RunBudget):
    period: Duration = Field(
        default="24h",
        description="The window the tokens and cost count over, up to now (a duration such as 1h or 168h).",
    )


class AgentPoolSpec(SpecModel):
    template_ref: Name = Field(
        description="The name of the AgentTemplate (in the pool's namespace) whose agents the pool runs.",
    )
    template: PodOverrides = Field(
        default_factory=PodOverrides,
        description="On Kubernetes: this pool's changes to the template's pod settings.",
    )
    scaling: Scaling = Field(default_factory=Scaling, description="How many agents the pool runs.")
    budget: PoolBudget | None = Field(
        default=None,
        description="A limit on the model tokens or cost the pool's agents use per period (agent runtime).",
    )
    replicas: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="The number of agents wanted now; set by `kubectl scale` or an HPA through the scale "
        "subresource, kept within scaling.minReplicas..maxReplicas (default: minReplicas).",
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
    """What an agent is and how it runs: its runtime, concurrency, timeout and retry policy."""

    kind: Literal["AgentTemplate"] = "AgentTemplate"
    spec: AgentTemplateSpec = Field(description="The template's settings.")


class AgentPool(Manifest):
    """A group of agents of one AgentTemplate that take tasks, and how many of them run."""

    kind: Literal["AgentPool"] = "AgentPool"
    spec: AgentPoolSpec = Field(description="The pool's settings.")


def merged_environment(template: AgentTemplateSpec, pool: AgentPoolSpec) -> list[EnvVar]:
    """The template's environment with the pool's entries replacing same-named ones."""
    merged = {env.name: env for env in template.environment}
    merged.update({env.name: env for env in pool.template.environment})
    return list(merged.values())
