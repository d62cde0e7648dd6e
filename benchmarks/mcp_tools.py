"""MCP tools benchmark: what a ToolServer costs an agent, over streamable HTTP and over stdio (JSON).

Against the llm-research example's server (examples/llm-research/notes_server.py, the official
`mcp` SDK): the time to connect (for stdio, starting the server's process) and list the tools,
then the latency of `--calls` calls of `search_notes` one after another on that session.

    python benchmarks/mcp_tools.py [--calls 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pweza.agent.tools import McpTools, read_tool_server

SERVER = Path(__file__).resolve().parents[1] / "examples" / "llm-research" / "notes_server.py"
START_TIMEOUT = 30.0


async def measure(spec: dict[str, Any], calls: int) -> dict[str, float]:
    tools = McpTools(read_tool_server("notes", spec))
    try:
        started = time.perf_counter()
        await tools.list_tools()
        connected = time.perf_counter() - started
        latencies = []
        for _ in range(calls):
            began = time.perf_counter()
            outcome = await tools.call_tool("search_notes", {"query": "tides"})
            latencies.append(time.perf_counter() - began)
            assert not outcome.is_error, outcome.content
    finally:
        await tools.aclose()
    latencies.sort()
    return {
        "connect_and_list_s": round(connected, 3),
        "call_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "call_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "calls_per_s": round(len(latencies) / sum(latencies), 1),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the notes server did not listen on 127.0.0.1:{port} within {START_TIMEOUT:g}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        log = str(Path(folder) / "appended.log")
        port = free_port()
        command = [sys.executable, str(SERVER), "--http", "--port", str(port), "--log", log]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_listening(port, server)
            http = asyncio.run(measure({"transport": "http", "url": f"http://127.0.0.1:{port}/mcp"}, args.calls))
        finally:
            server.terminate()
            server.wait(10)
        stdio_spec = {"transport": "stdio", "command": [sys.executable, str(SERVER), "--stdio", "--log", log]}
        stdio = asyncio.run(measure(stdio_spec, args.calls))
    print(json.dumps({"calls": args.calls, "load": os.getloadavg()[0], "http": http, "stdio": stdio}, indent=2))


if __name__ == "__main__":
    main()
