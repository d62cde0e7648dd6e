"""Reading the log files `pweza up` keeps for its agents, for GET /agents/{id}/logs and /tasks/{id}/logs.

`pweza up` writes each agent's output to NAMESPACE-POOL-INDEX.log in its log directory (one
file per pool slot, kept across the slot's restarts) and names the agent POOL-INDEX-PID-STAMP;
a manager without a log directory (on Kubernetes, agents' output is their pods' logs) has none.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from pweza.domain.errors import NotFound

# What a tail reads at most from the end of a file: enough for thousands of lines.
TAIL_BYTES = 4 << 20
# A followed log ends after this long; the client asks again to go on.
FOLLOW_SECONDS = 3600.0
_POLL_SECONDS = 0.3


def log_directory(configured: Path | None, pool: str) -> Path:
    if configured is None:
        raise NotFound(
            "this manager keeps no agent logs (its agents run elsewhere); on Kubernetes: "
            f"kubectl logs -l pweza.ai/pool={pool}"
        )
    return configured


def slot_log(directory: Path, namespace: str, pool: str, agent_id: str) -> Path | None:
    """The log file of the pool slot the agent runs in, if `pweza up` started it and the file is there."""
    rest = agent_id.removeprefix(f"{pool}-")
    index = rest.split("-", 1)[0]
    if rest == agent_id or not index.isdigit():
        return None
    path = directory / f"{namespace}-{pool}-{index}.log"
    return path if path.is_file() else None


def _last_lines(path: Path, count: int | None, keep: Callable[[str], bool]) -> tuple[list[str], int]:
    """The last `count` kept lines of the file (all if None) and the offset where it ends."""
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        start = max(0, size - TAIL_BYTES)
        handle.seek(start)
        data = handle.read(size - start)
    text = data.decode(errors="replace")
    if start > 0:
        text = text.split("\n", 1)[-1]  # the first line was cut
    lines = [line for line in text.splitlines() if keep(line)]
    kept = deque(lines, maxlen=count) if count is not None else lines
    return list(kept), size


async def stream_lines(
    find_paths: Callable[[], Awaitable[list[Path]]],
    *,
    tail: int | None,
    keep: Callable[[str], bool],
    follow: bool,
    done: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncIterator[bytes]:
    """The kept lines of the files (the last `tail` of each); following, what is appended to them
    and to files found later, until `done` says so or time is up."""
    offsets: dict[Path, int] = {}
    partial: dict[Path, bytes] = {}
    deadline = time.monotonic() + FOLLOW_SECONDS
    while True:
        finished = not follow or (done is not None and await done())
        for path in await find_paths():
            if path not in offsets:
                lines, offsets[path] = await asyncio.to_thread(_last_lines, path, tail, keep)
                partial[path] = b""
                for line in lines:
                    yield (line + "\n").encode()
                continue
            data = await asyncio.to_thread(_read_from, path, offsets[path])
            offsets[path] += len(data)
            *complete, partial[path] = (partial[path] + data).split(b"\n")
            for raw in complete:
                if keep(raw.decode(errors="replace")):
                    yield raw + b"\n"
        if finished or time.monotonic() >= deadline:
            return
        await asyncio.sleep(_POLL_SECONDS)


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read(TAIL_BYTES)
    except FileNotFoundError:
        return b""
