"""What a workflow's expressions do in a run: inputs built from earlier outputs, `when` that
skips, `foreach` that fans out, outputs gathered at the end, and errors that name the expression."""

from __future__ import annotations

from pweza.domain.runs import RunState, StepState
from pweza.testing import ScriptedAgent, ScriptedTask, WorkflowEnvironment

AGENTS = """
apiVersion: pweza.ai/v1
kind: AgentTemplate
metadata: {name: echoer}
spec:
  runtime: {kind: python, handler: "pweza.testing.handlers:echo"}
  concurrency: 4
  retry: {limit: 0}
---
apiVersion: pweza.ai/v1
kind: AgentPool
metadata: {name: echo}
spec: {templateRef: echoer}
"""

TRIAGE = """
apiVersion: pweza.ai/v1
kind: Workflow
metadata: {name: triage}
spec:
  inputs:
    tickets: {type: array}
    team: {type: string, default: support}
  steps:
    - name: classify
      agent: {pool: echo}
      foreach: inputs.tickets
      input: {ticket: "${{ item }}", position: "${{ index }}", urgent: "${{ item.startsWith('URGENT') }}"}
    - name: page
      depends: [classify]
      when: "steps.classify.output.exists(t, t.urgent)"
      agent: {pool: echo}
      input: "${{ steps.classify.output.filter(t, t.urgent).map(t, t.ticket) }}"
    - name: report
      depends: [classify, page]
      agent: {pool: echo}
      input: {text: "team ${{ inputs.team }}: ${{ size(inputs.tickets) }} tickets", paged: "${{ steps.page.state }}"}
  outputs:
    report: "${{ steps.report.output.text }}"
    paged: "${{ steps.page.output }}"
"""


def echo(task: ScriptedTask) -> object:
    return task.input


async def test_expressions_carry_values_from_inputs_and_steps_to_the_next_steps_and_outputs() -> None:
    agent = ScriptedAgent("echo", echo)
    async with WorkflowEnvironment(agent, manifests=AGENTS) as env:
        await env.apply(TRIAGE)
        run = await env.start_run("triage", {"tickets": ["URGENT: down", "typo on page", "URGENT: slow"]})
        finished = await env.run_result(run.id)
        assert finished.state is RunState.SUCCEEDED, finished.error
        assert finished.outputs == {"report": "team support: 3 tickets", "paged": ["URGENT: down", "URGENT: slow"]}
        steps = await env.steps(run.id)
        assert steps["classify"].output == [
            {"ticket": "URGENT: down", "position": 0, "urgent": True},
            {"ticket": "typo on page", "position": 1, "urgent": False},
            {"ticket": "URGENT: slow", "position": 2, "urgent": True},
        ]
        assert steps["report"].output == {"text": "team support: 3 tickets", "paged": "succeeded"}


async def test_a_false_when_skips_the_step_and_a_step_joining_it_sees_it_skipped() -> None:
    agent = ScriptedAgent("echo", echo)
    async with WorkflowEnvironment(agent, manifests=AGENTS) as env:
        await env.apply(TRIAGE)
        run = await env.start_run("triage", {"tickets": ["typo on page"], "team": "docs"})
        finished = await env.run_result(run.id)
        assert finished.state is RunState.SUCCEEDED, finished.error
        assert finished.outputs == {"report": "team docs: 1 tickets", "paged": None}
        steps = await env.steps(run.id)
        assert (steps["page"].state, steps["page"].output) == (StepState.SKIPPED, None)
        assert steps["report"].output == {"text": "team docs: 1 tickets", "paged": "skipped"}
        assert [task.step for task in agent.tasks] == ["classify", "report"]


async def test_a_step_whose_dependencies_were_all_skipped_is_skipped_too() -> None:
    agent = ScriptedAgent("echo", echo)
    async with WorkflowEnvironment(agent, manifests=AGENTS) as env:
        await env.apply(TRIAGE.replace("depends: [classify, page]", "depends: [page]"))
        run = await env.start_run("triage", {"tickets": ["typo on page"]})
        await env.run_result(run.id)
        steps = await env.steps(run.id)
        assert (steps["page"].state, steps["report"].state) == (StepState.SKIPPED, StepState.SKIPPED)
        assert [task.step for task in agent.tasks] == ["classify"]


async def test_an_expression_that_fails_at_run_time_fails_its_step_naming_the_expression() -> None:
    agent = ScriptedAgent("echo", echo)
    async with WorkflowEnvironment(agent, manifests=AGENTS) as env:
        await env.apply(TRIAGE)
        run = await env.start_run("triage", {"tickets": [42]})  # a number has no startsWith
        finished = await env.run_result(run.id)
        assert finished.state is RunState.FAILED
        classify = (await env.steps(run.id))["classify"]
        assert classify.state is StepState.FAILED
        assert classify.error is not None and "startsWith" in str(classify.error)
        assert agent.tasks == []
