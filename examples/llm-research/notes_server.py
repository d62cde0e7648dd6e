"""The llm-research example's MCP tool server, written with the official `mcp` SDK.

Two tools: `search_notes` finds lines of the bundled notes file (notes.md) that contain every
word of a query; `append_note` has a side effect, one line appended to a log file per call, so
that a test can count how many times it really ran.

    python notes_server.py --stdio                     # over standard input and output
    python notes_server.py --http --port 8765          # streamable HTTP on 127.0.0.1:8765/mcp

The log file is --log, else $NOTES_LOG, else notes-appended.log in the current directory.
With $NOTES_TOKEN set, the HTTP server answers only requests bearing it (Authorization: Bearer).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

import uvicorn

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

NOTES = Path(__file__).with_name("notes.md")
MAX_RESULTS = 5


def build_server(log: Path) -> MCPServer:
    server = MCPServer("notes", instructions="Search the research notes and record new findings.", log_level="WARNING")

    @server.tool()
    def search_notes(query: str) -> str:
        """Find notes that mention every word of the query (at most five lines, as JSON)."""
        words = [word.lower() for word in query.split()]
        if not words:
            raise ToolError("the query is empty: give one or more words to look for")
        lines = [line for line in NOTES.read_text().splitlines() if line and not line.startswith("#")]
        found = [line for line in lines if all(word in line.lower() for word in words)]
        return json.dumps({"query": query, "notes": found[:MAX_RESULTS], "total": len(found)})

    @server.tool()
    def append_note(text: str) -> str:
        """Record a new finding: one line appended to the findings log."""
        line = " ".join(text.split())
        if not line:
            raise ToolError("the note is empty")
        with log.open("a") as file:
            file.write(json.dumps({"at": time.time(), "text": line}) + "\n")
        count = len(log.read_text().splitlines())
        return json.dumps({"recorded": line, "notes": count})

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    transport = parser.add_mutually_exclusive_group(required=True)
    transport.add_argument("--stdio", action="store_true", help="serve over standard input and output")
    transport.add_argument("--http", action="store_true", help="serve streamable HTTP on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="the HTTP port (default 8765)")
    parser.add_argument("--log", type=Path, default=None, help="where append_note writes")
    args = parser.parse_args()
    log = args.log or Path(os.environ.get("NOTES_LOG") or "notes-appended.log")
    server = build_server(log.resolve())
    if args.stdio:
        server.run("stdio")
        return
    app: Any = server.streamable_http_app(host="127.0.0.1")
    token = os.environ.get("NOTES_TOKEN")
    if token:
        app = bearer_only(app, token)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


def bearer_only(app: Any, token: str) -> Any:
    """The ASGI app, answering 401 to HTTP requests without `Authorization: Bearer <token>`."""
    expected = f"Bearer {token}".encode()

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not secrets.compare_digest(given, expected):
                await send({"type": "http.response.start", "status": 401, "headers": [(b"content-length", b"0")]})
                await send({"type": "http.response.body", "body": b""})
                return
        await app(scope, receive, send)

    return guarded


if __name__ == "__main__":
    main()
