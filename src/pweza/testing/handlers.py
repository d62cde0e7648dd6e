"""Handlers for tests, benchmarks and examples: `pweza.testing.handlers:NAME`.

They take the task context the agent runtime passes (anything with `.input`,
`.cancelled`, `.attempt`, `.idempotency_key`), so they stay independent of its class.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any


def noop(ctx: Any) -> None:
    return None


async def async_noop(ctx: Any) -> None:
    return None


def echo(ctx: Any) -> Any:
    return ctx.input


async def sleep(ctx: Any) -> dict[str, Any]:
    """Sleep `input.seconds`, waking early when cancelled (returns whether it was)."""
    seconds = float((ctx.input or {}).get("seconds", 1.0))
    try:
        await asyncio.wait_for(ctx.cancelled.wait(), timeout=seconds)
    except TimeoutError:
        return {"slept": seconds, "cancelled": False}
    marker = (ctx.input or {}).get("marker")
    if marker:
        Path(marker).write_text("cancelled")
    raise asyncio.CancelledError


def record(ctx: Any) -> dict[str, Any]:
    """Append the task's idempotency key and this pid to `input.log` (proves who ran what),
    after `input.seconds` of work if given."""
    time.sleep(float(ctx.input.get("seconds", 0.0)))
    log = Path(ctx.input["log"])
    with log.open("a") as handle:
        handle.write(f"{ctx.idempotency_key} {os.getpid()}\n")
    return {"value": ctx.input.get("value"), "pid": os.getpid()}


async def block_then_record(ctx: Any) -> dict[str, Any]:
    """Write a 'started' marker, then sleep; used to kill an agent mid-task."""
    Path(ctx.input["started"]).write_text(str(os.getpid()))
    await asyncio.sleep(float(ctx.input.get("seconds", 3600)))
    return {"pid": os.getpid()}


def fail_until(ctx: Any) -> dict[str, Any]:
    """Fail with a retryable error until attempt `input.succeed_on`."""
    if ctx.attempt < int(ctx.input.get("succeed_on", 2)):
        raise RuntimeError(f"flaky failure on attempt {ctx.attempt}")
    return {"attempt": ctx.attempt}


async def block_first_attempt(ctx: Any) -> dict[str, Any]:
    """Attempt 1 writes `input.started` (its pid) and hangs; later attempts finish at once."""
    if ctx.attempt == 1:
        Path(ctx.input["started"]).write_text(str(os.getpid()))
        await asyncio.sleep(3600)
    return {"pid": os.getpid(), "attempt": ctx.attempt}


async def interval(ctx: Any) -> Any:
    """Sleep `input.seconds`, appending 'start end' to `input.log`; returns `input.value`."""
    started = time.time()
    await asyncio.sleep(float(ctx.input.get("seconds", 0.01)))
    with Path(ctx.input["log"]).open("a") as handle:
        handle.write(f"{started} {time.time()}\n")
    return ctx.input.get("value")


def fail_if_file(ctx: Any) -> dict[str, Any]:
    """Fail for good while the file `input.flag` exists (a fault a person then fixes)."""
    from pweza.agent.sdk import TaskFailure

    if Path(ctx.input["flag"]).exists():
        raise TaskFailure(f"{ctx.input['flag']} is present", type="Broken", retryable=False)
    return {"ok": True}


def add_one(ctx: Any) -> dict[str, Any]:
    """`{"v": n}` -> `{"v": n + 1}` after `input.seconds`; the chain test checks every link."""
    time.sleep(float(ctx.input.get("seconds", 0.0)))
    return {"v": int(ctx.input["v"]) + 1}


async def delegate_down(ctx: Any) -> dict[str, Any]:
    """Delegate to the first of `input.pools`, which delegates to the next, and so on."""
    pools = list(ctx.input.get("pools", []))
    if not pools:
        return {"leaf": ctx.input.get("value")}
    child = await ctx.delegate(pools[0], {"pools": pools[1:], "value": ctx.input.get("value")})
    return {"via": pools[0], "child": child}


async def sized_output(ctx: Any) -> str:
    """A string of `input.bytes` characters, after `input.seconds` (so a burst of them ends together)."""
    await asyncio.sleep(float(ctx.input.get("seconds", 0.0)))
    return "x" * int(ctx.input["bytes"])


async def delegate_sized(ctx: Any) -> Any:
    """Delegate a string of `input.bytes` characters to the pool `input.pool`."""
    return await ctx.delegate(ctx.input["pool"], "x" * int(ctx.input["bytes"]))


async def record_runs(ctx: Any) -> dict[str, Any]:
    """Append `start KEY PID` to `input.log`, work `input.seconds`, then append `end KEY PID`:
    every execution of every attempt is on record, wherever and however often it ran."""
    log = Path(ctx.input["log"])
    with log.open("a") as handle:
        handle.write(f"start {ctx.idempotency_key} {os.getpid()}\n")
    await asyncio.sleep(float(ctx.input.get("seconds", 3.0)))
    with log.open("a") as handle:
        handle.write(f"end {ctx.idempotency_key} {os.getpid()}\n")
    return {"key": ctx.idempotency_key, "pid": os.getpid()}


async def record_when_told(ctx: Any) -> dict[str, Any]:
    """Write the `input.started` marker, wait (at most `input.seconds`, 60 by default) for the
    file `input.go`, then append `KEY PID` to `input.log`: a test decides when the handler ends."""
    Path(ctx.input["started"]).write_text(str(os.getpid()))
    go = Path(ctx.input["go"])
    deadline = time.monotonic() + float(ctx.input.get("seconds", 60.0))
    while not go.exists() and time.monotonic() < deadline:  # noqa: ASYNC110 - a file has no event to await
        await asyncio.sleep(0.02)
    with Path(ctx.input["log"]).open("a") as handle:
        handle.write(f"{ctx.idempotency_key} {os.getpid()}\n")
    return {"attempt": ctx.attempt, "pid": os.getpid()}
