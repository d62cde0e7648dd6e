"""An attempt lives as long as its agent heartbeats it and its timeout allows; then it is retried."""

from __future__ import annotations

from pweza.domain.tasks import ErrorType, TaskState
from pweza.testing import Hang, Reply, ScriptedAgent, Vanish, WorkflowEnvironment, eventually_async

LEASE = 30.0
MANIFESTS = """
apiVersion: pweza.ai/v1
kind: AgentTemplate
metadata: {name: crawler}
spec:
  runtime: {kind: python, handler: "pweza.testing.handlers:echo"}
  timeout: 10m
  retry: {limit: 1, backoff: 1s}
---
apiVersion: pweza.ai/v1
kind: AgentPool
metadata: {name: crawlers}
spec: {templateRef: crawler}
"""


async def test_an_attempt_whose_agent_stops_heartbeating_is_retried_on_another_agent() -> None:
    frozen = ScriptedAgent("crawlers", [Vanish()])
    async with WorkflowEnvironment(frozen, manifests=MANIFESTS, settings={"lease_seconds": LEASE}) as env:
        task = await env.submit("crawlers", {"url": "https://example.org"})
        await eventually_async(lambda: frozen.tasks, what="the first attempt to reach the frozen agent")
        healthy = await env.add_agent(ScriptedAgent("crawlers", [Reply("crawled")]))
        await env.clock.advance(LEASE - 1)
        assert healthy.tasks == [], "the lease has not run out yet"
        await env.clock.advance(2)
        finished = await env.task_result(task.id)
        assert (finished.state, finished.output, finished.attempts) == (TaskState.SUCCEEDED, "crawled", 2)
        first, second = await env.attempts(task.id)
        assert first.error is not None and first.error.type == ErrorType.AGENT_LOST
        assert (first.agent_id, second.agent_id) == (frozen.id, healthy.id)


async def test_heartbeats_keep_an_attempt_alive_far_beyond_one_lease() -> None:
    agent = ScriptedAgent("crawlers", [Reply("slow but alive", after=5 * LEASE)])
    async with WorkflowEnvironment(agent, manifests=MANIFESTS, settings={"lease_seconds": LEASE}) as env:
        task = await env.submit("crawlers", {"url": "https://example.org/big"})
        await eventually_async(lambda: agent.tasks, what="the attempt to start")
        await env.clock.advance(5 * LEASE)
        finished = await env.task_result(task.id, skip_time=False)
        assert (finished.state, finished.attempts) == (TaskState.SUCCEEDED, 1)


async def test_an_attempt_past_its_timeout_is_cancelled_on_the_agent_and_retried() -> None:
    agent = ScriptedAgent("crawlers", [Hang(), Reply("second time lucky")])
    async with WorkflowEnvironment(agent, manifests=MANIFESTS) as env:
        task = await env.submit("crawlers", {"url": "https://example.org/slow"}, timeout_seconds=20)
        await eventually_async(lambda: agent.tasks, what="the attempt to start")
        await env.clock.advance(19)
        assert agent.cancels == []
        await env.clock.advance(2)
        assert agent.cancels == [(task.id, "timeout")]
        finished = await env.task_result(task.id)
        assert (finished.state, finished.attempts) == (TaskState.SUCCEEDED, 2)
        first, _ = await env.attempts(task.id)
        assert first.state is TaskState.TIMED_OUT


async def test_a_task_out_of_retries_after_its_timeout_ends_timed_out() -> None:
    agent = ScriptedAgent("crawlers", [Hang(), Hang()])
    async with WorkflowEnvironment(agent, manifests=MANIFESTS) as env:
        task = await env.submit("crawlers", {"url": "https://example.org/never"}, timeout_seconds=20)
        finished = await env.task_result(task.id)  # the clock skips over both timeouts
        assert (finished.state, finished.attempts) == (TaskState.TIMED_OUT, 2)
        assert finished.error is not None and finished.error.type == ErrorType.TIMEOUT
