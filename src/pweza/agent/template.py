"""The part of an AgentTemplate spec an agent acts on, read from its Welcome without pydantic.

The manager validated the template (`pweza.domain.manifests.AgentTemplateSpec`) when it was
applied; the agent only needs a handful of its fields. Reading them by hand spares every agent
process pydantic and the model classes (about 15 MiB each, see benchmarks/agent_rss.py); the
checks here only guard against a message that is not what a manager sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

RUNTIME_KINDS = ("python", "http", "shell", "llm", "agent")


class TemplateError(ValueError):
    """The template in a Welcome cannot be used (it is not what a manager sends)."""


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    """The template's `runtime` block: the kind and its settings (camelCase in the YAML)."""

    kind: str
    handler: str | None = None
    python_path: tuple[str, ...] = ()
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    command: tuple[str, ...] = ()
    working_dir: str | None = None
    base_url: str | None = None
    model: str | None = None
    prompt: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float | None = None
    model_ref: str | None = None
    system_prompt: str | None = None
    max_turns: int | None = None
    max_tokens: int | None = None
    output_schema: dict[str, Any] | None = None
    # agent: the ModelConfigs the manager resolved for modelRef, the model's own first, then its
    # fallbacks in order, each {"name": ..., "spec": {...}}; names it found no object for are in
    # `missing_models`.
    models: tuple[dict[str, Any], ...] = ()
    missing_models: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AgentTemplateView:
    runtime: RuntimeSettings
    concurrency: int = 1
    environment: tuple[tuple[str, str], ...] = ()


def read_template(template_json: bytes) -> AgentTemplateView:
    """The spec in a Welcome's `template_json`; TemplateError says what is wrong with it."""
    try:
        spec = orjson.loads(template_json)
    except orjson.JSONDecodeError as error:
        raise TemplateError(f"not JSON: {error}") from None
    spec = _mapping(spec, "spec")
    runtime = _mapping(spec.get("runtime"), "runtime")
    kind = runtime.get("kind")
    if kind not in RUNTIME_KINDS:
        raise TemplateError(f"runtime.kind: {kind!r} is not one of {', '.join(RUNTIME_KINDS)}")
    temperature = runtime.get("temperature")
    if temperature is not None and not isinstance(temperature, int | float):
        raise TemplateError("runtime.temperature: not a number")
    settings = RuntimeSettings(
        kind=kind,
        handler=_text(runtime, "handler"),
        python_path=tuple(_texts(runtime, "pythonPath")),
        url=_text(runtime, "url"),
        headers={str(k): str(v) for k, v in _mapping(runtime.get("headers") or {}, "runtime.headers").items()},
        command=tuple(_texts(runtime, "command")),
        working_dir=_text(runtime, "workingDir"),
        base_url=_text(runtime, "baseUrl"),
        model=_text(runtime, "model"),
        prompt=_text(runtime, "prompt"),
        api_key_env=_text(runtime, "apiKeyEnv") or "OPENAI_API_KEY",
        temperature=None if temperature is None else float(temperature),
        model_ref=_text(runtime, "modelRef"),
        system_prompt=_text(runtime, "systemPrompt"),
        max_turns=_count(runtime, "maxTurns"),
        max_tokens=_count(runtime, "maxTokens"),
        output_schema=_mapping(runtime["outputSchema"], "runtime.outputSchema") if "outputSchema" in runtime else None,
        models=tuple(_mapping(model, "runtime.models[]") for model in runtime.get("models") or []),
        missing_models=tuple(_texts(runtime, "missingModels")),
    )
    needed = {
        "python": settings.handler,
        "http": settings.url,
        "shell": settings.command,
        "llm": settings.base_url,
        "agent": settings.model_ref,
    }
    if not needed[kind]:
        raise TemplateError(f"runtime kind {kind!r} lacks its settings")
    concurrency = spec.get("concurrency", 1)
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise TemplateError(f"concurrency: {concurrency!r} is not a positive integer")
    environment = []
    for entry in spec.get("environment") or []:
        entry = _mapping(entry, "environment[]")
        environment.append((str(entry.get("name", "")), str(entry.get("value", ""))))
    return AgentTemplateView(settings, concurrency, tuple((k, v) for k, v in environment if k))


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TemplateError(f"{where}: expected a mapping")
    return value


def _text(block: dict[str, Any], key: str) -> str | None:
    value = block.get(key)
    if value is not None and not isinstance(value, str):
        raise TemplateError(f"runtime.{key}: expected a string")
    return value


def _count(block: dict[str, Any], key: str) -> int | None:
    value = block.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise TemplateError(f"runtime.{key}: expected a positive integer")
    return value


def _texts(block: dict[str, Any], key: str) -> list[str]:
    value = block.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TemplateError(f"runtime.{key}: expected a list of strings")
    return value
