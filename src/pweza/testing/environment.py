"""A whole manager in the test's own process: a temporary SQLite store, scripted agents, fake time.

    async with WorkflowEnvironment(ScriptedAgent("writers", [Fail("busy"), Reply("done")])) as env:
        await env.apply(MANIFESTS)                  # templates, pools, workflows as YAML
        run = await env.start_run("report", {"topic": "tides"})
        await env.clock.advance(1)                  # the retry's backoff, without waiting for it
        finished = await env.run_result(run.id)
        assert finished.state is RunState.SUCCEEDED

No gRPC, no HTTP, no subprocess (but the expression sandbox's): the manager is the real one,
so what a test sees of leases, retries, cancels and expressions is what a deployment does.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

from pweza.domain.kinds import parse_manifest
from pweza.domain.records import StoredObject
from pweza.domain.roles import Role
from pweza.domain.runs import Run, StepRun
from pweza.domain.safe_yaml import load_all
from pweza.domain.tasks import Attempt, Task
from pweza.manager.auth import Principal
from pweza.manager.config import Settings
from pweza.manager.service import Manager
from pweza.manager.sessions import TaskRequest
from pweza.store.protocol import Store
from pweza.store.sqlite import SqliteStore
from pweza.testing.fake_clock import FakeClock
from pweza.testing.scripted_agent import ScriptedAgent

T = TypeVar("T")
# Who the audit log says submitted the tasks of a test.
_TEST = Principal(token_id="test", name="workflow-environment", role=Role.ADMIN)


class WorkflowEnvironment:
    """`agents` join once `manifests` (YAML text or mappings) are applied; `settings` are the
    manager's (e.g. ``{"lease_seconds": 10}``); time is `clock`'s, a new `FakeClock` by default."""

    def __init__(
        self,
        *agents: ScriptedAgent,
        manifests: str | Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        clock: FakeClock | None = None,
    ) -> None:
        self.clock = clock or FakeClock()
        self.agents: list[ScriptedAgent] = []
        self._waiting_agents = list(agents)
        self._manifests = manifests
        self._settings = dict(settings or {})
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self._manager: Manager | None = None
        # Time stands still while the store is being read or written (task changes on their way,
        # a run's next step being saved): an assignment reaches its agent at the moment it was
        # made, a step starts when its dependency ended, not after the clock moved on.
        self.clock.hold_while(self._writing)
        self._store: _CountedCalls | None = None

    @property
    def manager(self) -> Manager:
        """The embedded manager, for what this class does not wrap."""
        if self._manager is None:
            raise RuntimeError("the environment is not running: use it as `async with WorkflowEnvironment(...)`")
        return self._manager

    @property
    def database(self) -> Path:
        """The SQLite file the manager writes to."""
        assert self._directory is not None
        return Path(self._directory.name) / "pweza.db"

    async def __aenter__(self) -> WorkflowEnvironment:
        self._directory = tempfile.TemporaryDirectory(prefix="pweza-env-")
        try:
            await self._start_manager()
            if self._manifests is not None:
                await self.apply(self._manifests)
            for agent in self._waiting_agents:
                await self.add_agent(agent)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self._stop_manager()
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None

    # -- objects and agents -------------------------------------------------------
    async def apply(self, *documents: str | Mapping[str, Any]) -> list[StoredObject]:
        """Apply manifests as `pweza apply -f` would: YAML text (any number of documents) or mappings."""
        parsed: list[Any] = []
        for document in documents:
            parsed += load_all(document, "manifests") if isinstance(document, str) else [dict(document)]
        stored = []
        for body in parsed:
            if body:
                stored.append((await self.manager.registry.apply(parse_manifest(body)))[0])
        return stored

    async def add_agent(self, agent: ScriptedAgent) -> ScriptedAgent:
        """Connect another agent (its pool and template must be applied)."""
        await agent.connect(self.manager, self.clock)
        self.agents.append(agent)
        return agent

    # -- runs -----------------------------------------------------------------------
    async def start_run(
        self, workflow: str, inputs: Mapping[str, Any] | None = None, *, namespace: str = "default"
    ) -> Run:
        return await self.manager.workflows.start_run(namespace, workflow, dict(inputs or {}))

    async def run(self, run_id: str) -> Run:
        run = await self.manager.store.get_run(run_id)
        assert run is not None, f"run {run_id} not found"
        return run

    async def run_result(self, run_id: str, *, timeout: float = 10.0, skip_time: bool = True) -> Run:
        """The run once it has ended. With `skip_time`, whenever the manager and the agents have
        nothing to do but wait for a timer, the clock jumps to it (a backoff, a lease, a step's
        `after`); `timeout` is real seconds."""

        async def ended() -> Run | None:
            run = await self.run(run_id)
            return run if run.state.terminal else None

        return await self._wait(ended, timeout, f"run {run_id} to end", skip_time)

    async def steps(self, run_id: str) -> dict[str, StepRun]:
        return {step.name: step for step in await self.manager.store.get_steps(run_id)}

    async def cancel_run(self, run_id: str, reason: str = "cancelled by the test") -> Run:
        return await self.manager.workflows.cancel(run_id, reason)

    # -- tasks ----------------------------------------------------------------------
    async def submit(self, pool: str, input: Any = None, *, namespace: str = "default", **request: Any) -> Task:
        """Submit one task as `POST /api/v1/tasks` does (the pool's template gives its defaults)."""
        requests = [TaskRequest(namespace=namespace, pool=pool, input=input, **request)]
        (task,) = await self.manager.submit_tasks(_TEST, requests)
        return task

    async def task(self, task_id: str) -> Task:
        return await self.manager.dispatcher.get(task_id)

    async def task_result(self, task_id: str, *, timeout: float = 10.0, skip_time: bool = True) -> Task:
        """The task once it has finished and that is written to the store (`skip_time` and
        `timeout` as for `run_result`)."""
        dispatcher = self.manager.dispatcher
        if not skip_time:  # the way `GET /api/v1/tasks/{id}/wait` waits
            task = await dispatcher.wait(task_id, timeout)
            if not task.state.terminal:
                raise AssertionError(f"timed out after {timeout:g}s waiting for task {task_id} to finish")
            return task

        async def finished() -> Task | None:
            task = await dispatcher.get(task_id)
            # The dispatcher lets go of a finished task once its write is accepted.
            return task if task.state.terminal and dispatcher.live(task_id) is None else None

        return await self._wait(finished, timeout, f"task {task_id} to finish", skip_time)

    async def attempts(self, task_id: str) -> list[Attempt]:
        """The task's attempts as the store has them, first to last."""
        return await self.manager.store.list_attempts(task_id)

    async def cancel_task(self, task_id: str, reason: str = "cancelled by the test") -> Task:
        return await self.manager.dispatcher.cancel(task_id, reason)

    async def _wait(self, check: Callable[[], Awaitable[T | None]], timeout: float, what: str, skip_time: bool) -> T:
        deadline = time.monotonic() + timeout
        while True:
            found = await check()
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g}s (real time) waiting for {what}")
            due = self.clock.next_due if skip_time else None
            if due is not None:
                await self.clock.advance(max(0.0, due - self.clock.time()))
            else:
                await asyncio.sleep(0.01)

    # -- the manager itself -----------------------------------------------------------
    async def restart(self) -> None:
        """Stop the manager and start a new one on the same database, as after a crash of the
        process (the agents are gone too; add them again)."""
        await self._stop_manager()
        await self._start_manager()

    async def _start_manager(self) -> None:
        settings = Settings(database_url=f"sqlite:///{self.database}", **self._settings)
        self._store = _CountedCalls(SqliteStore(self.database))
        manager = Manager(cast(Store, self._store), settings, clock=self.clock)
        await manager.start()
        self._manager = manager

    def _writing(self) -> bool:
        if self._store is not None and self._store.in_flight:
            return True
        return self._manager is not None and bool(self._manager.dispatcher.writes.unwritten())

    async def _stop_manager(self) -> None:
        manager, self._manager = self._manager, None
        for agent in self.agents:
            await agent.disconnect()
        self.agents.clear()
        if manager is not None:
            await manager.stop()


class _CountedCalls:
    """The store, counting its calls in flight (the fake clock waits while there are any)."""

    def __init__(self, store: Store) -> None:
        self._inner = store
        self.in_flight = 0

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(value):
            return value

        @functools.wraps(value)
        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.in_flight += 1
            try:
                return await value(*args, **kwargs)
            finally:
                self.in_flight -= 1

        return counted
