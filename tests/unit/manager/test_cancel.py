"""A cancel reaches the agent running the attempt, ends the task cancelled, and is never retried."""

from __future__ import annotations

from pweza.domain.runs import RunState, StepState
from pweza.domain.tasks import ErrorType, TaskState
from pweza.testing import Hang, Reply, ScriptedAgent, Vanish, WorkflowEnvironment, eventually_async

MANIFESTS = """
apiVersion: pweza.ai/v1
kind: AgentTemplate
metadata: {name: translator}
spec:
  runtime: {kind: python, handler: "pweza.testing.handlers:echo"}
  retry: {limit: 5, backoff: 1s}
---
apiVersion: pweza.ai/v1
kind: AgentPool
metadata: {name: translators}
spec: {templateRef: translator}
---
apiVersion: pweza.ai/v1
kind: Workflow
metadata: {name: translate}
spec:
  steps:
    - {name: draft, agent: {pool: translators}, input: "draft"}
    - {name: polish, depends: [draft], agent: {pool: translators}, input: "polish"}
"""


async def test_cancelling_a_running_task_cancels_it_on_its_agent() -> None:
    agent = ScriptedAgent("translators", [Hang()])
    async with WorkflowEnvironment(agent, manifests=MANIFESTS) as env:
        task = await env.submit("translators", {"text": "bonjour"})
        await eventually_async(lambda: agent.running, what="the attempt to start")
        await env.cancel_task(task.id, "no longer needed")
        assert agent.cancels == [(task.id, "no longer needed")]
        finished = await env.task_result(task.id)
        assert (finished.state, finished.attempts) == (TaskState.CANCELLED, 1)
        assert agent.tasks[0].outcome is not None and agent.tasks[0].outcome.type == ErrorType.CANCELLED


async def test_a_task_cancelled_before_any_agent_took_it_never_runs() -> None:
    async with WorkflowEnvironment(manifests=MANIFESTS) as env:
        task = await env.submit("translators", {"text": "hola"})
        await env.cancel_task(task.id)
        agent = await env.add_agent(ScriptedAgent("translators", [Reply("hello")]))
        finished = await env.task_result(task.id)
        assert (finished.state, finished.attempts) == (TaskState.CANCELLED, 0)
        assert agent.tasks == []


async def test_a_cancel_the_agent_never_acknowledges_ends_the_task_after_the_grace() -> None:
    agent = ScriptedAgent("translators", [Vanish()])
    settings = {"cancel_grace_seconds": 10.0, "lease_seconds": 60.0}
    async with WorkflowEnvironment(agent, manifests=MANIFESTS, settings=settings) as env:
        task = await env.submit("translators", {"text": "ciao"})
        await eventually_async(lambda: agent.running, what="the attempt to start")
        await env.cancel_task(task.id)
        await env.clock.advance(9)
        assert (await env.task(task.id)).state is TaskState.RUNNING
        await env.clock.advance(2)
        finished = await env.task_result(task.id, skip_time=False)
        assert finished.state is TaskState.CANCELLED


async def test_cancelling_a_run_cancels_its_running_step_and_starts_no_other() -> None:
    agent = ScriptedAgent("translators", {"draft": [Hang()], "polish": [Reply("polished")]})
    async with WorkflowEnvironment(agent, manifests=MANIFESTS) as env:
        run = await env.start_run("translate")
        await eventually_async(lambda: agent.running, what="the draft step to start")
        await env.cancel_run(run.id)
        finished = await env.run_result(run.id)
        assert finished.state is RunState.CANCELLED
        steps = await env.steps(run.id)
        assert (steps["draft"].state, steps["polish"].state) == (StepState.CANCELLED, StepState.PENDING)
        assert [task.step for task in agent.tasks] == ["draft"]
        assert agent.cancels and agent.cancels[0][0] == agent.tasks[0].task_id
