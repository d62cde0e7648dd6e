"""Workflow expressions: CEL (the Common Expression Language), as Kubernetes uses it.

CEL has no loops beyond bounded macros over existing lists, no I/O and no access to
the host language's objects, so an expression cannot escape: it can only compute over
the variables we pass in. We still refuse `__dunder__` names outright (they have no use
and only ever appear in escape attempts) and bound source and result sizes. Comprehension
macros can still multiply work without bound: `needs_budget` tells the caller to evaluate
those where a deadline can stop them (pweza.manager.expression_sandbox).

In step inputs and outputs, a string that is exactly `${{ expr }}` becomes the
expression's value with its type; `${{ }}` inside a longer string is interpolated as
text. `when` and `foreach` are bare expressions (a surrounding `${{ }}` is allowed).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import orjson

MAX_SOURCE = 4096
MAX_RESULT_BYTES = 1 << 20
ROOTS = frozenset({"inputs", "steps", "item", "index", "run"})
_TEMPLATE = re.compile(r"\$\{\{(.*?)\}\}", re.S)
_WHOLE = re.compile(r"^\s*\$\{\{(.*?)\}\}\s*$", re.S)
_STRING_LITERAL = re.compile(r"'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"")
_DUNDER = re.compile(r"\b_\w*__|\b__\w*")
_PATH = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[\d+\])*")
_PATH_PART = re.compile(r"([A-Za-z_]\w*)|\[(\d+)\]")
# The comprehension macros (and cel.bind) are the only ways CEL can do more work than the
# length of the expression times the size of its inputs: `map` inside `map` multiplies.
_COMPREHENSION = re.compile(r"\b(?:map|filter|all|exists|exists_one|bind)\s*\(")
_STEP_REF = re.compile(r"\bsteps\s*\.\s*([A-Za-z_]\w*)|\bsteps\s*\[\s*['\"]([^'\"]+)['\"]\s*\]")


class ExpressionError(ValueError):
    """A bad expression: the message says what is wrong with it."""


def unwrap(source: str) -> str:
    whole = _WHOLE.match(source)
    return whole.group(1).strip() if whole else source.strip()


def preload() -> None:
    """Import the CEL package now (it is otherwise imported by the first compile): for a process
    whose first expression must not pay for it."""
    import cel  # noqa: F401


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> Any:
    """Parse and check one bare expression; cached, since runs evaluate the same ones often."""
    if len(source) > MAX_SOURCE:
        raise ExpressionError(f"expression is {len(source)} characters; the limit is {MAX_SOURCE}")
    code = _STRING_LITERAL.sub('""', source)
    if _DUNDER.search(code):
        raise ExpressionError(f"{source!r}: names with double underscores are not allowed")
    # Imported on first use: the package costs ~25 MiB and a REPL's worth of imports, which
    # processes that never evaluate an expression (agents, most CLI commands) do without.
    import cel

    try:
        program = cel.compile(source)
    except (ValueError, RuntimeError) as error:
        first_line = str(error).splitlines()[0]
        first_line = first_line.split(": ERROR: <input>:", 1)[-1]
        raise ExpressionError(f"{source!r} is not a valid CEL expression: {first_line}") from None
    return program


def check(source: str) -> None:
    compile_expression(unwrap(source))


def needs_budget(source: str) -> bool:
    """Whether evaluating may cost far more than reading the expression and its inputs.

    Such expressions must be evaluated where a deadline can stop them; the others are bounded
    by MAX_SOURCE times the size of the variables and are cheap to evaluate in place.
    """
    return _COMPREHENSION.search(_STRING_LITERAL.sub('""', unwrap(source))) is not None


def constant_value(source: str) -> tuple[bool, Any]:
    """(True, value) for an expression that reads no variables and is cheap, else (False, None)."""
    bare = unwrap(source)
    program = compile_expression(bare)
    if program.variables() or needs_budget(bare):
        return False, None
    return True, evaluate(bare, {})


def evaluate(source: str, variables: dict[str, Any], known: Mapping[str, Any] | None = None) -> Any:
    """The expression's value; `known` holds values already computed elsewhere (see needs_budget)."""
    bare = unwrap(source)
    if known is not None:
        if bare in known:
            return known[bare]
        if needs_budget(bare):  # the caller meant to compute these elsewhere: never run one here
            raise ExpressionError(f"{bare!r} was not evaluated: expressions with macros need a budget")
    program = compile_expression(bare)
    if _PATH.fullmatch(bare):
        # A plain reference is looked up directly: CEL maps do not keep their keys' order,
        # and `${{ steps.x.output }}` should hand the output on exactly as it was.
        found, value = _lookup(bare, variables)
        if found:
            return value
    try:
        value = _ordered(program.execute(variables))
    except Exception as error:  # noqa: BLE001 - any evaluation failure is the expression's
        raise ExpressionError(f"{bare!r} failed: {error}") from None
    if len(orjson.dumps(value, default=str)) > MAX_RESULT_BYTES:
        raise ExpressionError(f"{unwrap(source)!r} produced more than {MAX_RESULT_BYTES} bytes")
    return value


def _lookup(path: str, variables: dict[str, Any]) -> tuple[bool, Any]:
    current: Any = variables
    for name, index in _PATH_PART.findall(path):
        if name:
            if not isinstance(current, dict) or name not in current:
                return False, None
            current = current[name]
        else:
            position = int(index)
            if not isinstance(current, list) or not -len(current) <= position < len(current):
                return False, None
            current = current[position]
    return True, current


def _ordered(value: Any) -> Any:
    """Maps built by CEL come back in arbitrary key order: sort them, so results are stable."""
    if isinstance(value, dict):
        return {key: _ordered(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, list):
        return [_ordered(item) for item in value]
    return value


def templates_in(value: Any) -> Iterator[tuple[str, str]]:
    """Every `${{ }}` expression inside a JSON-like value, with its path below the value."""
    if isinstance(value, str):
        for match in _TEMPLATE.finditer(value):
            yield "", match.group(1).strip()
    elif isinstance(value, dict):
        for key, item in value.items():
            for path, source in templates_in(item):
                yield f".{key}{path}", source
    elif isinstance(value, list):
        for index, item in enumerate(value):
            for path, source in templates_in(item):
                yield f"[{index}]{path}", source


def render(value: Any, variables: dict[str, Any], known: Mapping[str, Any] | None = None) -> Any:
    """Replace the templates inside a JSON-like value (`known`: as for evaluate)."""
    if isinstance(value, str):
        whole = _WHOLE.match(value)
        if whole:
            return evaluate(whole.group(1), variables, known)
        if "${{" not in value:
            return value
        return _TEMPLATE.sub(lambda m: _as_text(evaluate(m.group(1), variables, known)), value)
    if isinstance(value, dict):
        return {key: render(item, variables, known) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, variables, known) for item in value]
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def step_references(source: str) -> set[str]:
    return {a or b for a, b in _STEP_REF.findall(source)}
