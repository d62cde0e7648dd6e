"""The ModelConfig kind: an OpenAI-compatible chat endpoint an `agent` runtime talks to.

The key itself is never part of the object (nor of the store, the agent's welcome or a log):
the object says where the agent finds it, an environment variable or a Kubernetes Secret.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pweza.domain.durations import Duration
from pweza.domain.kinds import register_kind
from pweza.domain.manifests import Manifest, Name, SpecModel
from pweza.domain.pricing import MAX_PRICE_PER_MILLION, Currency, Money

# Headers that carry credentials belong in apiKey, where they are read from a secret place.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "api-key", "x-api-key"})
MAX_FALLBACKS = 8


class SecretKeyRef(SpecModel):
    name: Name = Field(description="The Secret, in the ModelConfig's namespace.")
    key: str = Field(min_length=1, max_length=253, description="The entry of the Secret that holds the key.")


class ApiKey(SpecModel):
    """Where the agent finds the API key, sent as a bearer token: an environment variable or a Secret."""

    env: str | None = Field(
        default=None,
        pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$",
        description="The agent's environment variable holding the key.",
    )
    secret_key_ref: SecretKeyRef | None = Field(
        default=None,
        description="A Secret entry holding the key; on Kubernetes the agent pods get it as the variable "
        "PWEZA_MODEL_KEY_<NAME> (the ModelConfig's name in capitals, '-' as '_'), which embedded agents read too.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ApiKey:
        if (self.env is None) == (self.secret_key_ref is None):
            raise ValueError("give exactly one of env or secretKeyRef")
        return self


class RateLimit(SpecModel):
    requests_per_minute: int = Field(
        ge=1,
        le=1_000_000,
        description="The most requests sent to this model in any minute, by all agents together; more go "
        "to the next fallback, or wait for their turn when there is none.",
    )


class Pricing(SpecModel):
    """What the model's tokens cost, as its provider bills them."""

    currency: Currency = Field(default="USD", description="The currency of the prices (ISO 4217, such as USD).")
    prompt_per_million_tokens: Money = Field(
        ge=0, le=MAX_PRICE_PER_MILLION, description="The price of a million prompt (input) tokens."
    )
    completion_per_million_tokens: Money = Field(
        ge=0, le=MAX_PRICE_PER_MILLION, description="The price of a million completion (output) tokens."
    )


class ModelConfigSpec(SpecModel):
    base_url: str = Field(
        pattern=r"^https?://",
        description="The base URL of an OpenAI-compatible API (up to /v1); chats go to its /chat/completions.",
    )
    model: str = Field(min_length=1, max_length=253, description="The model named in each request.")
    api_key: ApiKey | None = Field(
        default=None,
        description="Where the key is (never the key itself); none for local servers that need no key.",
    )
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="The sampling temperature (default: the API's own)."
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="The most tokens one reply may have, unless the template sets its own (default: the API's).",
    )
    timeout: Duration = Field(
        default="60s",
        description="How long one request may take; past it the next fallback is tried. The last model "
        "left also waits this long for room within its concurrency and rate limits.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers sent with every request, by name (credentials go in apiKey instead).",
    )
    fallbacks: list[Name] = Field(
        default_factory=list,
        max_length=MAX_FALLBACKS,
        description="Other ModelConfigs (same namespace) tried in order when this one answers 429 or 5xx, "
        "cannot be reached or times out. Their own fallbacks are not followed.",
    )
    concurrency: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="The most requests in flight to this model at once, counted across every agent and "
        "manager replica (default: no limit); a request beyond it goes to the next fallback at once, or "
        "waits when there is none.",
    )
    rate_limit: RateLimit | None = Field(
        default=None, description="How often this model may be called, across every agent and manager replica."
    )
    pricing: Pricing | None = Field(
        default=None,
        description="What its tokens cost: each call's cost is computed from it when the call is recorded, and "
        "kept with it. Without it calls have no cost, and budgets in money refuse calls that may reach this model.",
    )

    @field_validator("headers")
    @classmethod
    def _no_credentials(cls, headers: dict[str, str]) -> dict[str, str]:
        secret = sorted(name for name in headers if name.lower() in _SECRET_HEADERS)
        if secret:
            raise ValueError(f"{', '.join(secret)} carries credentials; use apiKey instead")
        return headers

    @field_validator("fallbacks")
    @classmethod
    def _each_once(cls, fallbacks: list[str]) -> list[str]:
        if len(set(fallbacks)) != len(fallbacks):
            raise ValueError("a ModelConfig is named twice")
        return fallbacks


class ModelConfig(Manifest):
    """An OpenAI-compatible model endpoint: where it is, its key, defaults, fallbacks and limits."""

    kind: Literal["ModelConfig"] = "ModelConfig"
    spec: ModelConfigSpec = Field(description="The endpoint's settings.")

    @model_validator(mode="after")
    def _not_its_own_fallback(self) -> ModelConfig:
        if self.metadata.name in self.spec.fallbacks:
            raise ValueError("spec.fallbacks: a ModelConfig cannot be its own fallback")
        return self


register_kind(ModelConfig, "modelconfigs", "modelconfig", "mc")
