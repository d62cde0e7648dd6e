"""What users import: `pweza.agent` (the SDK a handler uses) and `pweza.testing` (the harness for
their own agents and workflows). The lists are pinned: a name added or dropped is a decision
made here, not a side effect of a refactor."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PUBLIC = {
    "pweza.agent": ["Delegator", "TaskCancelled", "TaskContext", "TaskFailure"],
    "pweza.agent.tools": [
        "AgentTools",
        "CombinedTools",
        "McpTools",
        "PoolTool",
        "PoolTools",
        "ToolNameClash",
        "ToolServerConfig",
        "ToolServerUnavailable",
        "read_pool_tools",
        "read_tool_server",
        "tools_for_attempt",
    ],
    "pweza.testing": [
        "Cluster",
        "ControlPlane",
        "Fail",
        "FakeClock",
        "Hang",
        "LocalModel",
        "MockLLM",
        "NodeCluster",
        "Platform",
        "PostgresServer",
        "Reply",
        "ScriptedAgent",
        "ScriptedTask",
        "Vanish",
        "WorkflowEnvironment",
        "eventually",
        "eventually_async",
        "running_cluster",
        "running_platform",
    ],
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_the_public_names_are_exactly_these(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == PUBLIC[module_name]


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_every_public_name_resolves_and_is_listed_by_dir(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in PUBLIC[module_name]:
        value = getattr(module, name)
        # Classes and functions keep their own name; a type alias (Delegator) only has to exist.
        assert getattr(value, "__name__", name) in (name, "Callable")
    assert set(PUBLIC[module_name]) <= set(dir(module))


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_an_unknown_name_is_an_attribute_error(module_name: str) -> None:
    module = importlib.import_module(module_name)
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = module.no_such_name


def test_star_import_gives_the_public_names() -> None:
    code = "from pweza.testing import *; from pweza.agent import *; print(Platform.__name__, TaskContext.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["Platform", "TaskContext"]
