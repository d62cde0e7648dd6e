"""`ScriptedAgent`: what each form of script makes of an attempt, as the manager records it."""

from __future__ import annotations

from pweza.domain.tasks import TaskState
from pweza.testing import Reply, ScriptedAgent, ScriptedTask, WorkflowEnvironment

MANIFESTS = """
apiVersion: pweza.ai/v1
kind: AgentTemplate
metadata: {name: worker}
spec:
  runtime: {kind: python, handler: "pweza.testing.handlers:echo"}
  retry: {limit: 2, backoff: 1s}
---
apiVersion: pweza.ai/v1
kind: AgentPool
metadata: {name: workers}
spec: {templateRef: worker}
"""


async def test_an_attempt_past_the_end_of_a_list_fails_and_is_not_retried() -> None:
    agent = ScriptedAgent("workers", [])
    async with WorkflowEnvironment(agent, manifests=MANIFESTS) as env:
        task = await env.submit("workers", "anything")
        finished = await env.task_result(task.id)
        assert (finished.state, finished.attempts) == (TaskState.FAILED, 1)
        assert finished.error is not None and finished.error.type == "ScriptExhausted"


async def test_an_exception_from_a_function_is_a_retryable_handler_error() -> None:
    def flaky(task: ScriptedTask) -> str:
        if task.attempt < 3:
            raise ConnectionError("the upstream hung up")
        return "third time"

    agent = ScriptedAgent("workers", flaky)
    async with WorkflowEnvironment(agent, manifests=MANIFESTS) as env:
        task = await env.submit("workers", "anything")
        finished = await env.task_result(task.id)
        assert (finished.state, finished.output, finished.attempts) == (TaskState.SUCCEEDED, "third time", 3)
        first, *_ = await env.attempts(task.id)
        assert first.error is not None and (first.error.type, first.error.message) == (
            "ConnectionError",
            "the upstream hung up",
        )


async def test_a_mapping_answers_tasks_of_no_listed_step_from_its_star_entry() -> None:
    agent = ScriptedAgent("workers", {"summarize": [Reply("a summary")], "*": lambda task: f"echo {task.input}"})
    async with WorkflowEnvironment(agent, manifests=MANIFESTS) as env:
        task = await env.submit("workers", "hello")
        assert (await env.task_result(task.id)).output == "echo hello"
