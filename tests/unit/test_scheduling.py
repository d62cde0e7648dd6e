"""The scheduler's decisions as a table: (workflow, step states, expression values) -> actions."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from pweza.domain.errors import Conflict, NotFound
from pweza.domain.expressions import ExpressionError
from pweza.domain.runs import RunState, StepApproval, StepError, StepRun, StepState
from pweza.domain.scheduling import (
    START,
    Action,
    CancelStep,
    Cursor,
    Evaluate,
    FailStep,
    FinishRun,
    RequestApproval,
    SkipStep,
    StartStep,
    SucceedStep,
    decide,
    end_run,
    outcome,
    retried,
)
from pweza.domain.workflows import WorkflowSpec

P, R, W, S, F, K, C, T = (
    StepState.PENDING,
    StepState.RUNNING,
    StepState.WAITING_APPROVAL,
    StepState.SUCCEEDED,
    StepState.FAILED,
    StepState.SKIPPED,
    StepState.CANCELLED,
    StepState.TIMED_OUT,
)
APPROVED = StepApproval("ship?", 1.0).decided(True, "ann", "fine", 2.0)


def step(name: str, *depends: str, gate: bool = False, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "depends": list(depends), **fields}
    if gate:
        body["approval"] = {"message": "ship?"}
    else:
        body["agent"] = {"pool": "p"}
    return body


def workflow(*steps: dict[str, Any], **spec: Any) -> WorkflowSpec:
    return WorkflowSpec.model_validate({"steps": list(steps), **spec})


def states(**given: StepState | StepRun) -> dict[str, StepRun]:
    """Steps by name, in the order given; a bare state makes a plain record in that state."""
    return {name: value if isinstance(value, StepRun) else StepRun("r", name, value) for name, value in given.items()}


def failed(name: str, message: str, state: StepState = F) -> StepRun:
    return StepRun("r", name, state, error=StepError("HandlerError", message, True))


def with_approval(name: str, state: StepState, approval: StepApproval | None) -> StepRun:
    return StepRun("r", name, state, approval=approval)


WHEN: dict[str, Any] = {"when": "inputs.go"}
TABLE: list[tuple[str, WorkflowSpec, dict[str, StepRun], dict[Evaluate, Any], list[Action]]] = [
    (
        "the roots start, their dependants wait",
        workflow(step("a"), step("b"), step("c", "a", "b")),
        states(a=P, b=P, c=P),
        {},
        [StartStep("a"), StartStep("b")],
    ),
    (
        "a step waits until all its dependencies have finished",
        workflow(step("a"), step("b"), step("c", "a", "b")),
        states(a=S, b=R, c=P),
        {},
        [],
    ),
    (
        "a step starts once all its dependencies succeeded",
        workflow(step("a"), step("b"), step("c", "a", "b")),
        states(a=S, b=S, c=P),
        {},
        [StartStep("c")],
    ),
    (
        "a failed dependency holds its dependants back and fails the run, naming the step and its error",
        workflow(step("a"), step("b", "a"), step("c")),
        states(a=failed("a", "boom"), b=P, c=R),
        {},
        [FinishRun(RunState.FAILED, "step 'a' failed: boom")],
    ),
    (
        "a timed-out dependency counts as failed",
        workflow(step("a"), step("b", "a")),
        states(a=failed("a", "took too long", T), b=P),
        {},
        [FinishRun(RunState.FAILED, "step 'a' timed_out: took too long")],
    ),
    (
        "the first failed step in the run's order is the one named",
        workflow(step("a"), step("b")),
        states(b=failed("b", "second"), a=failed("a", "first")),
        {},
        [FinishRun(RunState.FAILED, "step 'b' failed: second")],
    ),
    (
        "a failure without a message names the state alone",
        workflow(step("a")),
        states(a=C),
        {},
        [FinishRun(RunState.FAILED, "step 'a' cancelled")],
    ),
    (
        "continueOnFailure lets dependants run, and the run goes on",
        workflow(step("a", continueOnFailure=True), step("b", "a")),
        states(a=failed("a", "boom"), b=P),
        {},
        [StartStep("b")],
    ),
    (
        "a run whose only failure continues on failure succeeds",
        workflow(step("a", continueOnFailure=True), step("b", "a")),
        states(a=failed("a", "boom"), b=S),
        {},
        [FinishRun(RunState.SUCCEEDED)],
    ),
    (
        "a when not yet known is asked for, and nothing after it is decided",
        workflow(step("a", **WHEN), step("b")),
        states(a=P, b=P),
        {},
        [Evaluate("a", "when")],
    ),
    (
        "a false when skips the step, and a step whose every dependency was skipped is skipped",
        workflow(step("a", **WHEN), step("b", "a"), step("c", "b")),
        states(a=P, b=P, c=P),
        {Evaluate("a", "when"): False},
        [
            SkipStep("a", "when was false"),
            SkipStep("b", "every dependency was skipped"),
            SkipStep("c", "every dependency was skipped"),
            FinishRun(RunState.SUCCEEDED),
        ],
    ),
    (
        "a true when starts the step",
        workflow(step("a", **WHEN)),
        states(a=P),
        {Evaluate("a", "when"): True},
        [StartStep("a")],
    ),
    (
        "a when that fails to evaluate fails the step and the run",
        workflow(step("a", **WHEN), step("b")),
        states(a=P, b=P),
        {Evaluate("a", "when"): ExpressionError("no such key: go")},
        [
            FailStep("a", StepError("ExpressionError", "when: no such key: go")),
            StartStep("b"),
            FinishRun(RunState.FAILED, "step 'a' failed: when: no such key: go"),
        ],
    ),
    (
        "a skipped dependency beside one that succeeded does not skip the dependant",
        workflow(step("a"), step("b"), step("c", "a", "b")),
        states(a=K, b=S, c=P),
        {},
        [StartStep("c")],
    ),
    (
        "an approval gate asks once its dependencies are done; its dependants wait",
        workflow(step("a"), step("g", "a", gate=True), step("b", "g")),
        states(a=S, g=P, b=P),
        {},
        [RequestApproval("g")],
    ),
    (
        "a step waiting for its approval is left alone",
        workflow(step("g", gate=True), step("b", "g")),
        states(g=with_approval("g", W, StepApproval("ship?", 1.0)), b=P),
        {},
        [],
    ),
    (
        "an approved gate succeeds with its approval as output, and its dependants start at once",
        workflow(step("g", gate=True), step("b", "g")),
        states(g=with_approval("g", P, APPROVED), b=P),
        {},
        [SucceedStep("g", APPROVED.to_dict()), StartStep("b")],
    ),
    (
        "an approved step with an agent starts",
        workflow(step("a", approval={"message": "ship?"})),
        states(a=with_approval("a", P, APPROVED)),
        {},
        [StartStep("a")],
    ),
    (
        "a rejected approval has failed its step: the run fails with the rejection",
        workflow(step("g", gate=True), step("b", "g")),
        states(g=StepRun("r", "g", F, error=StepError("Rejected", "rejected by ann")), b=P),
        {},
        [FinishRun(RunState.FAILED, "step 'g' failed: rejected by ann")],
    ),
    (
        "the run succeeds when every step has finished, skipped ones included",
        workflow(step("a"), step("b", "a")),
        states(a=S, b=K),
        {},
        [FinishRun(RunState.SUCCEEDED)],
    ),
    (
        "with concurrency 2, three ready roots: two start",
        workflow(step("a"), step("b"), step("c"), concurrency=2),
        states(a=P, b=P, c=P),
        {},
        [StartStep("a"), StartStep("b")],
    ),
    (
        "with concurrency 1 and a step running, a ready step waits (a waiting approval takes no slot)",
        workflow(step("a"), step("g", gate=True), step("b"), concurrency=1),
        states(a=R, g=with_approval("g", W, StepApproval("ship?", 1.0)), b=P),
        {},
        [],
    ),
    (
        "a foreach not yet evaluated is asked for",
        workflow(step("a", foreach="inputs.files")),
        states(a=P),
        {},
        [Evaluate("a", "foreach")],
    ),
    (
        "a foreach starts one task per element",
        workflow(step("a", foreach="inputs.files")),
        states(a=P),
        {Evaluate("a", "foreach"): ["x", "y", "z"]},
        [StartStep("a", items=3)],
    ),
    (
        "a foreach over nothing succeeds at once with [] and lets its dependants start",
        workflow(step("a", foreach="inputs.files"), step("b", "a")),
        states(a=P, b=P),
        {Evaluate("a", "foreach"): []},
        [StartStep("a", items=0), SucceedStep("a", []), StartStep("b")],
    ),
    (
        "a foreach that does not give a list fails the step",
        workflow(step("a", foreach="inputs.files")),
        states(a=P),
        {Evaluate("a", "foreach"): 7},
        [
            FailStep("a", StepError("ExpressionError", "foreach must give a list, got int")),
            FinishRun(RunState.FAILED, "step 'a' failed: foreach must give a list, got int"),
        ],
    ),
    (
        "a step listed before its dependency is decided in a later pass over the steps",
        workflow(step("b", "a"), step("a", **WHEN)),
        states(b=P, a=P),
        {Evaluate("a", "when"): False},
        [SkipStep("a", "when was false"), SkipStep("b", "every dependency was skipped"), FinishRun(RunState.SUCCEEDED)],
    ),
]


@pytest.mark.parametrize(
    ("spec", "steps", "answers", "expected"), [row[1:] for row in TABLE], ids=[r[0] for r in TABLE]
)
def test_decide(
    spec: WorkflowSpec, steps: dict[str, StepRun], answers: dict[Evaluate, Any], expected: list[Action]
) -> None:
    assert decide(spec, steps, answers).actions == expected


def test_a_plan_that_asks_says_where_to_resume_and_a_complete_one_does_not() -> None:
    spec = workflow(step("a"), step("b", **WHEN))
    asking = decide(spec, states(a=S, b=P), {})
    assert (asking.actions, asking.resume) == ([Evaluate("b", "when")], Cursor(1, False))
    assert decide(spec, states(a=S, b=P), {Evaluate("b", "when"): True}).resume is None


def _drive(spec: WorkflowSpec, steps: dict[str, StepRun], values: dict[Evaluate, Any]) -> list[Action]:
    """Do what the engine does with plans: apply each action to the states, answer questions
    from `values`, and call again from where the plan stopped."""
    done: list[Action] = []
    answers: dict[Evaluate, Any] = {}
    resume = START
    while True:
        plan = decide(spec, steps, answers, resume)
        for action in plan.actions:
            done.append(action)
            match action:
                case Evaluate():
                    answers[action] = values[action]
                case StartStep(step=name, items=items):
                    steps[name].state = R if items != 0 else P
                case SucceedStep(step=name):
                    steps[name].state = S
                case SkipStep(step=name):
                    steps[name].state = K
                case FailStep(step=name, error=error):
                    steps[name].state, steps[name].error = F, error
                case RequestApproval(step=name):
                    steps[name].state = W
        if plan.resume is None:
            return done
        resume = plan.resume


@pytest.mark.parametrize(
    ("spec", "given"),
    [
        (workflow(step("a", **WHEN), step("b", "a", **WHEN), step("c"), step("d", "b", "c")), {}),
        # Listed before what it depends on, under a limit: `b` becomes ready in the walk's first
        # pass, but `c` comes first in it and takes the one slot (a walk begun again would give it to b).
        (
            workflow(step("b", "g"), step("g", gate=True), step("c", **WHEN), concurrency=1),
            {"g": with_approval("g", P, APPROVED)},
        ),
        (workflow(step("f", foreach="inputs.files"), step("g", "f", gate=True), step("h", "f", **WHEN)), {}),
    ],
    ids=["chain of whens", "out of order under a limit", "foreach then a gate"],
)
def test_asking_as_the_run_goes_decides_as_knowing_every_value_at_once(
    spec: WorkflowSpec, given: dict[str, StepRun]
) -> None:
    values: dict[Evaluate, Any] = {
        Evaluate("a", "when"): True,
        Evaluate("b", "when"): False,
        Evaluate("c", "when"): True,
        Evaluate("h", "when"): True,
        Evaluate("f", "foreach"): [],
    }

    def fresh() -> dict[str, StepRun]:
        return {s.name: copy.copy(given[s.name]) if s.name in given else StepRun("r", s.name) for s in spec.steps}

    at_once = decide(spec, fresh(), values).actions
    asked = _drive(spec, fresh(), values)
    assert [action for action in asked if not isinstance(action, Evaluate)] == at_once


def _random_workflow(rng: random.Random) -> tuple[WorkflowSpec, dict[str, StepRun], dict[Evaluate, Any]]:
    """A small DAG listed in a random order, some steps gated, conditional or foreach, with
    values for every expression and some steps approved already."""
    steps: list[dict[str, Any]] = []
    for i in range(rng.randint(1, 8)):
        earlier = [f"s{j}" for j in range(i)]
        fields: dict[str, Any] = {}
        if rng.random() < 0.3:
            fields["when"] = "inputs.go"
        if rng.random() < 0.2:
            fields["foreach"] = "inputs.files"
        if rng.random() < 0.2:
            fields["continueOnFailure"] = True
        gate = "foreach" not in fields and rng.random() < 0.2
        deps = rng.sample(earlier, rng.randint(0, min(3, len(earlier))))
        steps.append(step(f"s{i}", *deps, gate=gate, **fields))
    rng.shuffle(steps)
    concurrency = {"concurrency": rng.randint(1, 3)} if rng.random() < 0.5 else {}
    spec = workflow(*steps, **concurrency)
    given = {s.name: with_approval(s.name, P, APPROVED if rng.random() < 0.5 else None) for s in spec.steps}
    values: dict[Evaluate, Any] = {}
    for s in spec.steps:
        values[Evaluate(s.name, "when")] = rng.choice([True, False, ExpressionError("bad")])
        values[Evaluate(s.name, "foreach")] = rng.choice([[], [1, 2], 3, ExpressionError("bad")])
    return spec, given, values


@pytest.mark.parametrize("seed", range(100))
def test_on_random_workflows_asking_as_the_run_goes_decides_as_knowing_every_value(seed: int) -> None:
    spec, given, values = _random_workflow(random.Random(seed))
    at_once = decide(spec, {n: copy.copy(s) for n, s in given.items()}, values).actions
    asked = _drive(spec, {n: copy.copy(s) for n, s in given.items()}, values)
    assert [action for action in asked if not isinstance(action, Evaluate)] == at_once


def test_ending_a_run_cancels_its_running_and_waiting_steps_and_leaves_pending_ones() -> None:
    steps = states(a=S, b=R, c=W, d=P, e=failed("e", "boom"))
    assert end_run(steps, RunState.CANCELLED) == [CancelStep("b", "run cancelled"), CancelStep("c", "run cancelled")]
    assert end_run(steps, RunState.TIMED_OUT) == [CancelStep("b", "run timed_out"), CancelStep("c", "run timed_out")]
    assert end_run(states(a=S, b=K), RunState.SUCCEEDED) == []


def test_outcome_is_none_while_steps_remain() -> None:
    spec = workflow(step("a"), step("b", "a"))
    assert outcome(spec, states(a=S, b=R)) is None
    assert outcome(spec, states(a=S, b=S)) == FinishRun(RunState.SUCCEEDED)


def test_a_retry_resets_every_step_that_did_not_succeed_or_get_skipped() -> None:
    steps = states(a=S, b=failed("b", "boom"), c=C, d=T, e=P, f=W, g=K)
    assert retried(steps, None, "r") == ["b", "c", "d", "e", "f"]


def test_a_retry_of_one_step_takes_only_a_failed_one() -> None:
    steps = states(a=S, b=failed("b", "boom"))
    assert retried(steps, "b", "r") == ["b"]
    with pytest.raises(Conflict, match="step 'a' is succeeded; only a failed step can be retried"):
        retried(steps, "a", "r")
    with pytest.raises(NotFound, match="run r has no step 'z'"):
        retried(steps, "z", "r")
