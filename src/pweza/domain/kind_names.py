"""What the kinds are called — plurals and kubectl-style short names — without their models.

The CLI resolves `pweza get ap` with this alone; the pydantic models (pweza.domain.kinds)
load only where a document is validated.
"""

from __future__ import annotations

from pweza.domain.errors import InvalidInput

KIND_NAMES = ("AgentTemplate", "AgentPool", "Workflow", "ToolServer", "ModelConfig")
PLURALS: dict[str, str] = {
    "agenttemplates": "AgentTemplate",
    "agentpools": "AgentPool",
    "workflows": "Workflow",
    "toolservers": "ToolServer",
    "modelconfigs": "ModelConfig",
}
# Names a person types on the command line, kubectl style.
ALIASES: dict[str, str] = {
    "agenttemplate": "AgentTemplate",
    "template": "AgentTemplate",
    "templates": "AgentTemplate",
    "at": "AgentTemplate",
    "agentpool": "AgentPool",
    "pool": "AgentPool",
    "pools": "AgentPool",
    "ap": "AgentPool",
    "workflow": "Workflow",
    "wf": "Workflow",
    "toolserver": "ToolServer",
    "ts": "ToolServer",
}
ALIASES.update({"modelconfig": "ModelConfig", "mc": "ModelConfig"})


def resolve_kind(text: str) -> str:
    lowered = text.lower()
    if lowered in ALIASES:
        return ALIASES[lowered]
    if lowered in PLURALS:
        return PLURALS[lowered]
    raise InvalidInput(f"unknown kind {text!r}; known kinds: {', '.join(sorted(KIND_NAMES))}")


def plural_of(kind: str) -> str:
    return kind.lower() + "s"
