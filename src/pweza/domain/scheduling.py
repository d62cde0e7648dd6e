"""What a run does next, decided from its workflow and its steps' states alone.

The engine (pweza.manager.workflows) owns the I/O: it stores, submits tasks, evaluates
expressions in its sandbox, reads the clock. Here it only asks: `decide` walks the steps in
the workflow's order, pass after pass until a pass changes nothing, and says which step starts,
which is skipped or failed and why, which waits for an approval, and whether the run is over;
`end_run` what ending a run does to its steps, `retried` which steps a retry runs again.
Each decision sees the ones before it in the same call (a skipped step lets its dependants be
decided at once), exactly as when the engine decided while it walked.

Two facts are not in the states: a step's `when` and `foreach` values. `decide` asks for one
with an `Evaluate` action, the last of its plan: the engine applies the actions before it (the
expression then sees their effects, as it would have when decided in place), evaluates,
records the value (or the ExpressionError) under that action, and calls again with the plan's
`resume`, which carries on the walk where it stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pweza.domain.errors import Conflict, NotFound
from pweza.domain.expressions import ExpressionError
from pweza.domain.runs import RunState, StepError, StepRun, StepState
from pweza.domain.workflows import Step, WorkflowSpec

_FAILED = frozenset({StepState.FAILED, StepState.CANCELLED, StepState.TIMED_OUT})
_INTERRUPTED = frozenset({StepState.RUNNING, StepState.WAITING_APPROVAL})
_RETRIED = _FAILED | {StepState.PENDING, StepState.WAITING_APPROVAL}


@dataclass(frozen=True, slots=True)
class StartStep:
    """Start the step's tasks: one, or `items` for a foreach step (its values are the answer
    to its foreach `Evaluate`)."""

    step: str
    items: int | None = None


@dataclass(frozen=True, slots=True)
class SucceedStep:
    """The step succeeds with no task: an approved gate (its output is the approval) or a
    foreach over nothing (its output is [])."""

    step: str
    output: Any = None


@dataclass(frozen=True, slots=True)
class SkipStep:
    """The step is skipped (its `when` was false, or every dependency was skipped)."""

    step: str
    reason: str


@dataclass(frozen=True, slots=True)
class FailStep:
    """The step fails without a task: its `when` or `foreach` could not be evaluated."""

    step: str
    error: StepError


@dataclass(frozen=True, slots=True)
class RequestApproval:
    """The step waits for someone to approve or reject it."""

    step: str


@dataclass(frozen=True, slots=True)
class Evaluate:
    """A question: the value of the step's `when` or `foreach`. Answers are keyed by it."""

    step: str
    expression: Literal["when", "foreach"]


@dataclass(frozen=True, slots=True)
class CancelStep:
    """The run ended under the step: its tasks are cancelled, and so is the step."""

    step: str
    reason: str


@dataclass(frozen=True, slots=True)
class FinishRun:
    """The run is over. A succeeded run still renders its outputs, and fails if they do not."""

    state: RunState
    reason: str | None = None


Action = StartStep | SucceedStep | SkipStep | FailStep | RequestApproval | Evaluate | CancelStep | FinishRun
Answers = Mapping[Evaluate, Any]  # the value, or the ExpressionError evaluating it raised


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a walk over the steps stopped: the step to look at next, and whether the current
    pass changed anything (then another pass follows)."""

    index: int = 0
    progressed: bool = False


START = Cursor()


@dataclass(slots=True)
class Plan:
    actions: list[Action] = field(default_factory=list)
    # Set when the plan ends with an Evaluate: call `decide` again from here with its answer.
    resume: Cursor | None = None


class _Picture:
    """The steps' states as the actions decided so far leave them (the stored ones untouched)."""

    __slots__ = ("_by_name", "errors", "spec", "states", "steps")

    def __init__(self, spec: WorkflowSpec, steps: Mapping[str, StepRun]) -> None:
        self.spec = spec
        self.steps = steps
        self.states: dict[str, StepState] = {}
        self.errors: dict[str, StepError] = {}
        self._by_name: dict[str, Step] | None = None

    def continues_on_failure(self, name: str) -> bool:
        # Indexed only once a failure is met: `decide` runs once per question, and most have none.
        if self._by_name is None:
            self._by_name = {step.name: step for step in self.spec.steps}
        return self._by_name[name].continue_on_failure

    def state(self, name: str) -> StepState:
        return self.states.get(name) or self.steps[name].state

    def error(self, name: str) -> StepError | None:
        return self.errors.get(name) or self.steps[name].error


# What looking at one step came to.
_LEFT = 0  # nothing changed: not pending, not ready, or now waiting for an approval
_CHANGED = 1  # started, skipped, failed or succeeded: the pass made progress
_ASKED = 2  # a value is needed: the plan ends with the question
_FULL = 3  # the run has as many steps in flight as its concurrency allows: nothing more starts


def decide(spec: WorkflowSpec, steps: Mapping[str, StepRun], answers: Answers, resume: Cursor = START) -> Plan:
    """The next actions of a running run whose steps are in `steps` (keyed by name)."""
    walk = _Walk(spec, steps, answers)
    order = spec.steps
    index, progressed = resume.index, resume.progressed
    while True:
        while index < len(order):
            seen = walk.look_at(order[index])
            if seen == _ASKED:
                walk.plan.resume = Cursor(index, progressed)
                return walk.plan
            if seen == _FULL:
                return walk.finish()
            progressed = progressed or seen == _CHANGED
            index += 1
        if not progressed:
            return walk.finish()
        index, progressed = 0, False


class _Walk:
    """One call of `decide`: the plan so far, and the picture of the steps it leaves."""

    __slots__ = ("answers", "in_flight", "limit", "picture", "plan")

    def __init__(self, spec: WorkflowSpec, steps: Mapping[str, StepRun], answers: Answers) -> None:
        self.answers = answers
        self.picture = _Picture(spec, steps)
        self.plan = Plan()
        self.limit = spec.concurrency
        self.in_flight = 0 if self.limit is None else sum(1 for s in steps.values() if s.state is StepState.RUNNING)

    def look_at(self, step: Step) -> int:
        name = step.name
        picture = self.picture
        if picture.state(name) is not StepState.PENDING or not _ready(step, picture):
            return _LEFT
        if step.depends and all(picture.state(dep) is StepState.SKIPPED for dep in step.depends):
            return self._skip(name, "every dependency was skipped")
        if step.when is not None:
            when = self._answer(Evaluate(name, "when"))
            if when is _UNKNOWN:
                return _ASKED
            if isinstance(when, ExpressionError):
                return self._fail(name, f"when: {when}")
            if not when:
                return self._skip(name, "when was false")
        if self.limit is not None and self.in_flight >= self.limit:
            return _FULL
        approval = picture.steps[name].approval
        if step.approval is not None and (approval is None or approval.decision is None):
            self.plan.actions.append(RequestApproval(name))
            picture.states[name] = StepState.WAITING_APPROVAL
            return _LEFT
        if step.agent is None:  # an approval-only gate, approved
            return self._succeed(name, None if approval is None else approval.to_dict())
        if step.foreach is None:
            return self._start(name, None)
        values = self._answer(Evaluate(name, "foreach"))
        if values is _UNKNOWN:
            return _ASKED
        if isinstance(values, ExpressionError):
            return self._fail(name, f"foreach: {values}")
        if not isinstance(values, list):
            return self._fail(name, f"foreach must give a list, got {type(values).__name__}")
        self._start(name, len(values))
        if not values:
            return self._succeed(name, [])
        return _CHANGED

    def finish(self) -> Plan:
        ending = _outcome(self.picture)
        if ending is not None:
            self.plan.actions.append(ending)
        return self.plan

    def _answer(self, question: Evaluate) -> Any:
        """The question's answer, or _UNKNOWN after asking it."""
        if question in self.answers:
            return self.answers[question]
        self.plan.actions.append(question)
        return _UNKNOWN

    def _start(self, name: str, items: int | None) -> int:
        self.plan.actions.append(StartStep(name, items))
        self.picture.states[name] = StepState.RUNNING
        self.in_flight += 1
        return _CHANGED

    def _succeed(self, name: str, output: Any) -> int:
        self.plan.actions.append(SucceedStep(name, output))
        if self.picture.states.get(name) is StepState.RUNNING:  # a foreach over nothing
            self.in_flight -= 1
        self.picture.states[name] = StepState.SUCCEEDED
        return _CHANGED

    def _skip(self, name: str, reason: str) -> int:
        self.plan.actions.append(SkipStep(name, reason))
        self.picture.states[name] = StepState.SKIPPED
        return _CHANGED

    def _fail(self, name: str, message: str) -> int:
        error = StepError("ExpressionError", message)
        self.plan.actions.append(FailStep(name, error))
        self.picture.states[name] = StepState.FAILED
        self.picture.errors[name] = error
        return _CHANGED


_UNKNOWN: Any = object()


def outcome(spec: WorkflowSpec, steps: Mapping[str, StepRun]) -> FinishRun | None:
    """How the run ends now, or None while it goes on: failed at its first failed step that does
    not continue on failure, succeeded once every step has finished."""
    return _outcome(_Picture(spec, steps))


def end_run(steps: Mapping[str, StepRun], state: RunState) -> list[CancelStep]:
    """What ending a run (for any reason: done, failed, cancelled, timed out) does to its steps:
    those running or waiting for an approval are cancelled; pending ones stay pending."""
    return [CancelStep(name, f"run {state.value}") for name, step in steps.items() if step.state in _INTERRUPTED]


def retried(steps: Mapping[str, StepRun], step: str | None, run_id: str) -> list[str]:
    """The steps a retry resets to pending: the named one, which must have failed, or else every
    step that failed, was cancelled, timed out or never finished (pending or waiting)."""
    if step is not None:
        if step not in steps:
            raise NotFound(f"run {run_id} has no step {step!r}", field="step")
        if steps[step].state not in _FAILED:
            raise Conflict(f"step {step!r} is {steps[step].state.value}; only a failed step can be retried")
        return [step]
    return [name for name, record in steps.items() if record.state in _RETRIED]


def _ready(step: Step, picture: _Picture) -> bool:
    """Every dependency has finished, and none failed without `continueOnFailure` (then the
    step waits: the run fails, and a retry of the failed step can still let it run)."""
    for dep in step.depends:
        state = picture.state(dep)
        if not state.finished or (state in _FAILED and not picture.continues_on_failure(dep)):
            return False
    return True


def _outcome(picture: _Picture) -> FinishRun | None:
    # In the order of the run's steps as given (the engine's copy keeps the store's order).
    for name in picture.steps:
        state = picture.state(name)
        if state in _FAILED and not picture.continues_on_failure(name):
            error = picture.error(name)
            message = f"step {name!r} {state.value}: {'' if error is None else error.message}".rstrip(": ")
            return FinishRun(RunState.FAILED, message)
    if all(picture.state(name).finished for name in picture.steps):
        return FinishRun(RunState.SUCCEEDED)
    return None
