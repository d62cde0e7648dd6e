"""The llm-research example's MCP server (examples/llm-research/notes_server.py) for tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pweza.testing.processes import free_port, stop_processes
from pweza.testing.waiting import eventually

NOTES_SERVER = Path(__file__).resolve().parents[2] / "examples" / "llm-research" / "notes_server.py"


def stdio_spec(log: Path) -> dict[str, Any]:
    """A ToolServer spec that runs the notes server over stdio, writing its side effects to `log`."""
    return {"transport": "stdio", "command": [sys.executable, str(NOTES_SERVER), "--stdio", "--log", str(log)]}


@contextmanager
def notes_over_http(log: Path, token: str | None = None, port: int | None = None) -> Iterator[str]:
    """The notes server on a loopback port, its MCP endpoint's URL; `token` makes it ask for one."""
    port = port or free_port()
    env = {**os.environ, "NOTES_TOKEN": token or ""}
    command = [sys.executable, str(NOTES_SERVER), "--http", "--port", str(port), "--log", str(log)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        eventually(lambda: process.poll() is not None or _accepts(port), timeout=30, what="the notes server to listen")
        if process.poll() is not None:
            raise RuntimeError(f"the notes server exited: {process.stderr.read().decode() if process.stderr else ''}")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop_processes([process])


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
