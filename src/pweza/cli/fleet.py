"""What `pweza up` says about its agents: how many are ready, and which cannot serve and why."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Protocol

from rich.console import Console
from rich.markup import escape

from pweza.manager.service import Manager

_POLL_SECONDS = 0.25
_REPORT_SECONDS = 1.0


class Fleet(Protocol):
    """The agents `pweza up` runs: how many each pool should have."""

    @property
    def desired(self) -> dict[tuple[str, str], int]: ...


@dataclass(frozen=True, slots=True)
class FleetState:
    wanted: int
    ready: int
    connected: int
    # (agent id, pool, error) of each agent that said it cannot serve.
    unhealthy: tuple[tuple[str, str, str], ...] = field(default=())

    def summary(self) -> str:
        waiting = self.wanted - self.ready - len(self.unhealthy)
        parts = [f"{self.ready}/{self.wanted} agents ready"]
        if self.unhealthy:
            parts.append(f"{len(self.unhealthy)} cannot serve")
        if waiting > 0:
            parts.append(f"{waiting} not connected yet")
        return ", ".join(parts)

    @property
    def settled(self) -> bool:
        """Every wanted agent is either ready or has said why it cannot serve."""
        return self.ready + len(self.unhealthy) >= self.wanted


def fleet_state(manager: Manager, fleet: Fleet) -> FleetState:
    desired = fleet.desired
    ready = connected = 0
    unhealthy = []
    for session in manager.dispatcher.sessions():
        if session.pool_key not in desired:
            continue  # an agent started by hand: not ours to count
        connected += 1
        if session.error:
            unhealthy.append((session.id, f"{session.namespace}/{session.pool}", session.error))
        elif session.slots > 0:  # its Ready came: its handler imported
            ready += 1
    return FleetState(sum(desired.values()), ready, connected, tuple(sorted(unhealthy)))


def _say_unhealthy(console: Console, state: FleetState, told: set[str]) -> None:
    for agent, pool, error in state.unhealthy:
        if agent not in told:
            told.add(agent)
            console.print(f"[red]agent {agent} of pool {pool} cannot serve:[/red] {escape(error)}")


async def wait_for_fleet(
    manager: Manager, fleet: Fleet, console: Console, timeout: float, stop: asyncio.Event
) -> FleetState:
    """Wait (at most `timeout` seconds, or until `stop`) until every agent is ready or has said
    why it cannot be."""
    deadline = time.monotonic() + timeout
    told: set[str] = set()
    state = fleet_state(manager, fleet)
    while not state.settled and time.monotonic() < deadline and not stop.is_set():
        _say_unhealthy(console, state, told)
        await asyncio.sleep(_POLL_SECONDS)
        state = fleet_state(manager, fleet)
    _say_unhealthy(console, state, told)
    return state


async def report_fleet(manager: Manager, fleet: Fleet, console: Console, last: FleetState) -> None:
    """After start: a line whenever the count of ready agents changes (pools applied, agents
    restarted), and one for each agent that cannot serve."""
    told = {agent for agent, _, _ in last.unhealthy}
    while True:
        await asyncio.sleep(_REPORT_SECONDS)
        state = fleet_state(manager, fleet)
        _say_unhealthy(console, state, told)
        if (state.ready, state.wanted) != (last.ready, last.wanted):
            console.print(state.summary())
        last = state
