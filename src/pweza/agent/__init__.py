"""The agent runtime: the worker process that executes tasks, and the SDK its handlers use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pweza.agent.sdk import Delegator, TaskCancelled, TaskContext, TaskFailure

__all__ = ["Delegator", "TaskCancelled", "TaskContext", "TaskFailure"]


def __getattr__(name: str) -> Any:
    # Loaded on first use, so `python -m pweza.agent` chooses how structlog is imported (see
    # pweza.agent.entry) before anything here imports it.
    if name in __all__:
        from pweza.agent import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'pweza.agent' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
