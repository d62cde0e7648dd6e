"""The CLI starts light: its client commands never load the manager's machinery.

What a command imports is pinned here, not how long it takes (that is measured by
benchmarks/cli_startup.py): an import added at the top of a command module shows up here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# The server side, the operator, the expression engine, and the slow HTTP client.
HEAVY = ("pweza.manager", "pweza.api", "pweza.rpc", "pweza.store", "pweza.operator", "pweza.agent",
         "grpc", "fastapi", "uvicorn", "sqlalchemy", "kopf", "kubernetes", "cel", "structlog",
         "prometheus_client", "httpx", "asyncio", "rich.live", "pweza.domain.workflows", "yaml",
         "pydantic")  # fmt: skip  # typer 0.29 parses parameters with pydantic (0.16 s): pinned 0.28

PROBE = """
import json, sys
sys.argv = ["pweza", *json.loads(sys.argv[1])]
import pweza.cli.main
try:
    pweza.cli.main.app()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in HEAVY))))
"""


def loaded_heavy_modules(*args: str) -> list[str]:
    """The heavy modules loaded by importing the CLI and running `pweza ARGS` in a fresh interpreter."""
    code = f"HEAVY = {HEAVY!r}\n" + PROBE
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(list(args))], capture_output=True, text=True, timeout=60
    )
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    found: list[str] = json.loads(lines[-1])
    return found


def test_importing_the_cli_loads_nothing_heavy() -> None:
    assert loaded_heavy_modules("--version") == []


@pytest.mark.parametrize(
    "args",
    [
        ("get", "ap"),
        ("get", "agents", "-o", "wide"),
        ("describe", "ap", "classifiers"),
        ("task", "list"),
        ("runs", "list"),
        ("token", "list"),
        ("--help",),
    ],
)
def test_a_client_command_loads_nothing_heavy(args: tuple[str, ...]) -> None:
    # Nothing listens on port 1: the command fails to connect, after doing all its imports.
    assert loaded_heavy_modules(*args, *(("-s", "http://127.0.0.1:1") if args != ("--help",) else ())) == []
