"""An agent is handed at most as many attempts as it has free slots, whatever it says."""

from __future__ import annotations

from pweza.domain.tasks import TaskState
from pweza.testing import Reply, ScriptedAgent, WorkflowEnvironment, eventually_async

MANIFESTS = """
apiVersion: pweza.ai/v1
kind: AgentTemplate
metadata: {name: writer}
spec:
  runtime: {kind: python, handler: "pweza.testing.handlers:echo"}
  concurrency: 2
---
apiVersion: pweza.ai/v1
kind: AgentPool
metadata: {name: writers}
spec: {templateRef: writer}
"""


def takes_ten_seconds(task: object) -> Reply:
    return Reply("written", after=10)


async def test_an_agent_holds_no_more_attempts_than_its_template_allows() -> None:
    agent = ScriptedAgent("writers", takes_ten_seconds)
    async with WorkflowEnvironment(agent, manifests=MANIFESTS) as env:
        tasks = [await env.submit("writers", {"page": page}) for page in range(5)]
        await eventually_async(lambda: len(agent.running) == 2, what="the agent to fill its two slots")
        await env.clock.advance(10)  # the first two answer; the next two take their slots
        await eventually_async(lambda: len(agent.tasks) == 4, what="the freed slots to be filled")
        assert len(agent.running) == 2
        await env.clock.advance(20)
        finished = [await env.task_result(task.id) for task in tasks]
        assert [task.state for task in finished] == [TaskState.SUCCEEDED] * 5
        assert agent.peak_running == 2


async def test_credits_beyond_the_free_slots_give_the_agent_nothing_more() -> None:
    agent = ScriptedAgent("writers", takes_ten_seconds)
    async with WorkflowEnvironment(agent, manifests=MANIFESTS) as env:
        for page in range(5):
            await env.submit("writers", {"page": page})
        await eventually_async(lambda: len(agent.running) == 2, what="the agent to fill its two slots")
        agent.send_credit(10)  # a confused (or hostile) agent claims ten free slots
        await env.clock.advance(1)
        assert len(agent.tasks) == 2
        assert agent.peak_running == 2


async def test_work_spreads_over_the_agents_of_a_pool() -> None:
    first, second = ScriptedAgent("writers", takes_ten_seconds), ScriptedAgent("writers", takes_ten_seconds)
    async with WorkflowEnvironment(first, second, manifests=MANIFESTS) as env:
        for page in range(4):
            await env.submit("writers", {"page": page})
        await eventually_async(
            lambda: len(first.running) == 2 and len(second.running) == 2, what="both agents to take two each"
        )
