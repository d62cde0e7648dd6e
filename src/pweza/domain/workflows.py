"""The Workflow kind: a DAG of steps done by agents, checked whole when applied."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from pweza.domain import expressions
from pweza.domain.durations import Duration
from pweza.domain.kinds import register_kind
from pweza.domain.manifests import Manifest, Name, RetryPolicy, RunBudget, SpecModel

# Step names are CEL identifiers so that `steps.<name>.output` reads naturally.
StepName = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z][a-z0-9_]*$")]
InputType = Literal["string", "number", "integer", "boolean", "object", "array"]
_FOREACH_ALLOWED = "foreach must be a CEL expression that gives a list, such as 'inputs.files' or '[1, 2, 3]'"


class WorkflowInput(SpecModel):
    type: InputType = Field(default="string", description="The JSON type a run's value must have.")
    default: Any = Field(default=None, description="The value a run gets when it gives none.")
    description: str = Field(default="", description="What the input is for, for people starting a run.")
    required: bool | None = Field(
        default=None, description="Whether a run must give this input (default: required when there is no default)."
    )

    @property
    def is_required(self) -> bool:
        return self.required if self.required is not None else self.default is None


class StepAgent(SpecModel):
    """Who does the step: a pool by name, any pool of a template, or pools with capabilities."""

    pool: Name | None = Field(
        default=None,
        description="The AgentPool (in the workflow's namespace) whose agents do the step.",
    )
    template: Name | None = Field(default=None, description="Any AgentPool running this AgentTemplate does the step.")
    capabilities: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Any AgentPool whose template offers all these capabilities does the step.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> StepAgent:
        given = [n for n in ("pool", "template", "capabilities") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of pool, template or capabilities")
        return self


class Approval(SpecModel):
    message: str = Field(
        default="",
        description="What the approver is asked (shown by `pweza runs` and in the run's step).",
    )
    timeout: Duration | None = Field(
        default=None,
        description="Reject the step automatically after this long, a duration such as 4h (default: wait).",
    )


class Step(SpecModel):
    name: StepName = Field(
        description=(
            "The step's name, unique in the workflow; expressions read its result as steps.NAME.output and "
            "steps.NAME.state."
        ),
    )
    agent: StepAgent | None = Field(
        default=None,
        description=(
            "Who does the step: exactly one of pool, template or capabilities. A step without one is only an approval "
            "gate."
        ),
    )
    input: Any = Field(
        default=None,
        description=(
            "The task's input, any JSON value; a string that is exactly ${{ expr }} becomes the value of the CEL "
            "expression, and ${{ expr }} inside longer text is interpolated."
        ),
    )
    depends: list[StepName] = Field(
        default_factory=list,
        description="The steps that must finish before this one starts; only their outputs may be read by its "
        "expressions.",
    )
    when: str | None = Field(
        default=None,
        description="A CEL expression: when it is false the step is skipped (default: always run).",
    )
    foreach: str | None = Field(
        default=None,
        description=(
            "A CEL expression giving a list: one task per element (item and index in expressions); the step's output "
            "is the list of their outputs, in order."
        ),
    )
    parallelism: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="foreach only: how many of the step's tasks run at once (default: all).",
    )
    retry: RetryPolicy | None = Field(
        default=None,
        description="The step's retry policy, instead of its agent template's.",
    )
    timeout: Duration | None = Field(
        default=None,
        description=(
            "How long one attempt of the step's task may take, instead of its agent template's timeout (a duration "
            "such as 30s)."
        ),
    )
    approval: Approval | None = Field(
        default=None,
        description=(
            "Wait for someone to approve the step before it runs (or, without an agent, as the whole step); a "
            "rejection fails it."
        ),
    )
    continue_on_failure: bool = Field(
        default=False,
        description="Whether steps that depend on this one still run when it fails (they can test steps.NAME.state).",
    )

    @field_validator("foreach", mode="before")
    @classmethod
    def _foreach_is_an_expression(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str):
            raise ValueError(f"got {_yaml_type(value)} instead of a string; {_FOREACH_ALLOWED} (quoted in YAML)")
        return value

    @model_validator(mode="after")
    def _does_something(self) -> Step:
        if self.agent is None and self.approval is None:
            raise ValueError("a step needs an agent, an approval, or both")
        if self.foreach is None and self.parallelism is not None:
            raise ValueError("parallelism only applies to a foreach step")
        if self.foreach is not None and self.agent is None:
            raise ValueError("a foreach step needs an agent")
        return self


class WorkflowSpec(SpecModel):
    inputs: dict[str, WorkflowInput] = Field(
        default_factory=dict,
        description="The inputs a run takes, by name; expressions read them as inputs.NAME.",
    )
    steps: list[Step] = Field(
        min_length=1,
        max_length=1000,
        description="The steps, a DAG through their depends; checked whole when the workflow is applied.",
    )
    outputs: dict[str, Any] = Field(
        default_factory=dict,
        description="The run's outputs, by name: values with ${{ expr }} templates, evaluated when the run succeeds.",
    )
    timeout: Duration | None = Field(
        default=None,
        description="How long a whole run may take before it ends timed_out (a duration such as 10m; "
        "default: no limit).",
    )
    concurrency: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="How many steps of one run are in flight at once (default: no limit).",
    )
    budget: RunBudget | None = Field(
        default=None, description="A limit on the model tokens or cost each run's agent calls use (agent runtime)."
    )

    @model_validator(mode="after")
    def _valid_graph(self) -> WorkflowSpec:
        problem = graph_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self


class Workflow(Manifest):
    """A DAG of steps done by agents, run durably: each run takes inputs and gives outputs."""

    kind: Literal["Workflow"] = "Workflow"
    spec: WorkflowSpec = Field(description="The workflow's inputs, steps and outputs.")


def graph_problem(spec: WorkflowSpec) -> str | None:
    """The first thing wrong with the DAG or its expressions, naming where, or None."""
    index_of: dict[str, int] = {}
    for index, step in enumerate(spec.steps):
        if step.name in index_of:
            return f"steps[{index}].name: duplicate step name {step.name!r} (also steps[{index_of[step.name]}])"
        index_of[step.name] = index
    for index, step in enumerate(spec.steps):
        for dep in step.depends:
            if dep not in index_of:
                return f"steps[{index}].depends: unknown step {dep!r}"
            if dep == step.name:
                return f"steps[{index}].depends: step {step.name!r} depends on itself"
    cycle = find_cycle(spec)
    if cycle:
        return f"steps: dependency cycle {' -> '.join(cycle)}"
    ancestors = ancestors_of(spec)
    for index, step in enumerate(spec.steps):
        problem = _expression_problem(step, f"steps[{index}]", ancestors[step.name])
        if problem:
            return problem
    names = set(index_of)
    for key, value in spec.outputs.items():
        for path, source in expressions.templates_in(value):
            where = f"outputs.{key}{path}"
            try:
                expressions.check(source)
            except expressions.ExpressionError as error:
                return f"{where}: {error}"
            unknown = expressions.step_references(source) - names
            if unknown:
                return f"{where}: unknown step {sorted(unknown)[0]!r}"
    return None


def _expression_problem(step: Step, where: str, ancestors: set[str]) -> str | None:
    checks: list[tuple[str, str]] = [(f"{where}.input{p}", s) for p, s in expressions.templates_in(step.input)]
    if step.when is not None:
        checks.append((f"{where}.when", step.when))
    if step.foreach is not None:
        checks.append((f"{where}.foreach", step.foreach))
    for field, source in checks:
        try:
            expressions.check(source)
        except expressions.ExpressionError as error:
            return f"{field}: {error}"
        if field.endswith(".foreach"):
            problem = _constant_foreach_problem(source)
            if problem:
                return f"{field}: {problem}"
        for ref in sorted(expressions.step_references(source) - ancestors):
            return (
                f"{field}: refers to step {ref!r}, which is not among the steps it depends on "
                f"(add it to {where}.depends)"
            )
    return None


def _constant_foreach_problem(source: str) -> str | None:
    """A foreach that reads no variables gives the same value every run: check it is a list now."""
    try:
        known, value = expressions.constant_value(source)
    except expressions.ExpressionError as error:
        return str(error)
    if known and not isinstance(value, list):
        return f"{source!r} gives {_yaml_type(value)}, not a list; {_FOREACH_ALLOWED}"
    return None


def _yaml_type(value: Any) -> str:
    names = {
        type(None): "null",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        dict: "a mapping",
        list: "a list",
    }
    return names.get(type(value), f"a {type(value).__name__}")


def find_cycle(spec: WorkflowSpec) -> list[str] | None:
    graph = {step.name: list(step.depends) for step in spec.steps}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in graph.get(node, []):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for name in graph:
        if name not in state:
            found = visit(name)
            if found:
                # Report in the direction work flows: a -> b means b runs after a.
                return list(reversed(found))
    return None


def ancestors_of(spec: WorkflowSpec) -> dict[str, set[str]]:
    """Every step's transitive dependencies, for a graph already known to have no cycle.

    One pass, each step's set built from its parents' (memoized). Walking the graph again for
    each step took seconds on a 1000-step chain, which `pweza apply` and the admission webhook
    (with its 5 s budget) both paid.
    """
    parents = {step.name: step.depends for step in spec.steps}
    found: dict[str, set[str]] = {}
    for start in parents:
        stack = [start]
        while stack:
            name = stack[-1]
            if name in found:
                stack.pop()
                continue
            waiting = [dep for dep in parents.get(name, []) if dep not in found]
            if waiting:
                stack.extend(waiting)
                continue
            stack.pop()
            mine: set[str] = set()
            for dep in parents.get(name, []):
                mine.add(dep)
                mine |= found[dep]
            found[name] = mine
    return found


register_kind(Workflow, "workflows", "workflow", "wf")
