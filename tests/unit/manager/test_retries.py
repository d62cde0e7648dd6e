"""A failed attempt is retried after its backoff, as the retry policy says, and only as often."""

from __future__ import annotations

from itertools import pairwise

from pweza.agent import TaskFailure
from pweza.domain.tasks import TaskState
from pweza.testing import Fail, Reply, ScriptedAgent, ScriptedTask, WorkflowEnvironment, eventually_async

MANIFESTS = """
apiVersion: pweza.ai/v1
kind: AgentTemplate
metadata: {name: fetcher}
spec:
  runtime: {kind: python, handler: "pweza.testing.handlers:echo"}
  retry: {limit: 3, backoff: 2s, factor: 3, maxBackoff: 10s, nonRetryable: [BadInput]}
---
apiVersion: pweza.ai/v1
kind: AgentPool
metadata: {name: fetchers}
spec: {templateRef: fetcher}
"""


async def test_each_retry_waits_its_backoff_longer_than_the_last() -> None:
    agent = ScriptedAgent("fetchers", [Fail("rate limited"), Fail("rate limited"), Reply("fetched")])
    async with WorkflowEnvironment(agent, manifests=MANIFESTS) as env:
        task = await env.submit("fetchers", {"url": "https://example.org"})
        await eventually_async(lambda: len(agent.tasks) == 1 and agent.tasks[0].finished, what="attempt 1 to fail")
        await env.clock.advance(1.9)
        assert len(agent.tasks) == 1, "retried before its backoff of 2 s"
        await env.clock.advance(0.2)
        await eventually_async(lambda: len(agent.tasks) == 2 and agent.tasks[1].finished, what="attempt 2 to fail")
        await env.clock.advance(5.8)  # attempt 2 failed at 2 s, when it was handed out; 2 s x 3 later is 8 s
        assert len(agent.tasks) == 2, "retried before its backoff of 6 s"
        await env.clock.advance(0.2)
        finished = await env.task_result(task.id, skip_time=False)
        assert (finished.state, finished.output, finished.attempts) == (TaskState.SUCCEEDED, "fetched", 3)
        starts = [attempt.started_at for attempt in agent.tasks]
        assert [round(later - earlier) for earlier, later in pairwise(starts)] == [2, 6]


async def test_the_backoff_stops_growing_at_max_backoff() -> None:
    agent = ScriptedAgent("fetchers", [Fail("down")] * 3 + [Reply("up")])
    async with WorkflowEnvironment(agent, manifests=MANIFESTS) as env:
        task = await env.submit("fetchers", {"url": "https://example.org"})
        finished = await env.task_result(task.id)
        assert finished.state is TaskState.SUCCEEDED
        starts = [attempt.started_at for attempt in agent.tasks]
        assert [round(later - earlier) for earlier, later in pairwise(starts)] == [2, 6, 10]


async def test_a_task_fails_with_its_last_error_once_the_retries_are_spent() -> None:
    agent = ScriptedAgent("fetchers", [Fail(f"attempt {number} failed") for number in range(1, 6)])
    async with WorkflowEnvironment(agent, manifests=MANIFESTS) as env:
        task = await env.submit("fetchers", {"url": "https://example.org"})
        finished = await env.task_result(task.id)
        assert (finished.state, finished.attempts) == (TaskState.FAILED, 4)  # the first and three retries
        assert finished.error is not None and finished.error.message == "attempt 4 failed"


async def test_a_non_retryable_error_type_fails_the_task_at_once() -> None:
    def refuse(task: ScriptedTask) -> None:
        raise TaskFailure("no such URL", type="BadInput")

    agent = ScriptedAgent("fetchers", refuse)
    async with WorkflowEnvironment(agent, manifests=MANIFESTS) as env:
        task = await env.submit("fetchers", {"url": "nonsense"})
        finished = await env.task_result(task.id)
        assert (finished.state, finished.attempts) == (TaskState.FAILED, 1)
        assert finished.error is not None and finished.error.type == "BadInput"


async def test_an_error_the_handler_says_no_retry_can_help_is_not_retried() -> None:
    agent = ScriptedAgent("fetchers", [Fail("the page is gone for good", retryable=False), Reply("unreachable")])
    async with WorkflowEnvironment(agent, manifests=MANIFESTS) as env:
        task = await env.submit("fetchers", {"url": "https://example.org/gone"})
        finished = await env.task_result(task.id)
        assert (finished.state, finished.attempts) == (TaskState.FAILED, 1)
