"""Looking up kinds by name and turning raw documents into validated manifests."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from pweza.domain.errors import InvalidInput
from pweza.domain.kind_names import ALIASES, PLURALS, resolve_kind
from pweza.domain.manifests import API_VERSION, AgentPool, AgentTemplate, Manifest
from pweza.domain.safe_yaml import MAX_DEPTH

_INNER_PATH = re.compile(r"^((?:steps|outputs|inputs|servers|agents|spec)[\w.\[\]]*): (.*)$", re.S)
KINDS: dict[str, type[Manifest]] = {"AgentTemplate": AgentTemplate, "AgentPool": AgentPool}
__all__ = [
    "ALIASES",
    "KINDS",
    "PLURALS",
    "format_location",
    "parse_manifest",
    "register_kind",
    "resolve_kind",
    "validation_problem",
]


def register_kind(kind: type[Manifest], plural: str, *aliases: str) -> None:
    """Let a later module (workflows) add its kind without this one importing it."""
    name = kind.model_fields["kind"].default
    KINDS[name] = kind
    PLURALS[plural] = name
    for alias in (name.lower(), plural, *aliases):
        ALIASES[alias] = name


def format_location(loc: tuple[int | str, ...], prefix: str = "") -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def validation_problem(error: ValidationError, prefix: str = "") -> InvalidInput:
    """The first error of a pydantic failure, as one message naming the field path."""
    details = error.errors(include_url=False)
    first = details[0]
    path = format_location(tuple(p for p in first["loc"] if not _is_union_tag(p)), prefix)
    message = first["msg"].removeprefix("Value error, ")
    # Whole-object validators (a workflow's graph) name the exact spot at the start of their message.
    inner = _INNER_PATH.match(message)
    if inner:
        path = f"{path}.{inner.group(1)}" if path else inner.group(1)
        message = inner.group(2)
    more = f" (and {len(details) - 1} more problems)" if len(details) > 1 else ""
    return InvalidInput(f"{path or '(document)'}: {message}{more}", field=path or None)


def _is_union_tag(part: int | str) -> bool:
    return isinstance(part, str) and part.startswith("function-")


def _too_deep(document: dict[str, Any], limit: int, named: int = 4) -> str | None:
    """Where the document nests deeper than `limit` (its first `named` path parts), or None.

    Values of any shape (step inputs, outputs, status) are walked recursively later on, and the
    JSON encoder gives up past 254 levels: a manifest sent as JSON is bounded as YAML ones are.
    """
    stack: list[tuple[Any, int, tuple[int | str, ...]]] = [(document, 1, ())]
    while stack:
        value, depth, path = stack.pop()
        if not isinstance(value, dict | list):
            continue
        if depth > limit:
            return format_location(path) or "(document)"
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            stack.append((item, depth + 1, (*path, key) if len(path) < named else path))
    return None


def parse_manifest(document: Any, *, expected_kind: str | None = None) -> Manifest:
    if not isinstance(document, dict):
        raise InvalidInput("a manifest must be a mapping with apiVersion, kind, metadata and spec")
    api_version = document.get("apiVersion")
    if api_version != API_VERSION:
        raise InvalidInput(f"apiVersion: expected {API_VERSION!r}, got {api_version!r}", field="apiVersion")
    kind = document.get("kind")
    if kind not in KINDS:
        raise InvalidInput(f"kind: unknown kind {kind!r}; known kinds: {', '.join(sorted(KINDS))}", field="kind")
    if expected_kind is not None and kind != expected_kind:
        raise InvalidInput(f"kind: expected {expected_kind!r}, got {kind!r}", field="kind")
    deep = _too_deep(document, MAX_DEPTH)
    if deep is not None:
        raise InvalidInput(f"{deep}: nested more than {MAX_DEPTH} levels deep; the limit is {MAX_DEPTH}", field=deep)
    try:
        return KINDS[kind].model_validate(document)
    except ValidationError as error:
        raise validation_problem(error) from None


# Last, once `register_kind` exists: whoever looks kinds up finds Workflow among them.
from pweza.domain import model_configs as _model_configs  # noqa: E402, F401 - registers the ModelConfig kind
from pweza.domain import toolservers as _toolservers  # noqa: E402, F401 - registers the ToolServer kind
from pweza.domain import workflows as _workflows  # noqa: E402, F401 - registers the Workflow kind
