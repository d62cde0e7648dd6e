"""Row <-> record conversions, generated from the domain's dataclasses and `schema`'s tables.

A record's fields and its table's columns share their names, so one `RowCodec` per table
derives both directions from the field types: enums are stored as their value, `TaskError`,
`StepError` and `StepApproval` as their dicts, anything that is not a plain string or number
as JSON text, and nothing else is converted. A field without a column (or a column without a
field) fails at import, so a new column is added in `schema.py`, the dataclass and a
migration, and nowhere else.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from operator import attrgetter
from typing import Any, Generic, Protocol, TypeVar

import orjson
from pydantic import BaseModel
from sqlalchemy import Table

from pweza.domain.manifests import RetryPolicy
from pweza.domain.records import AuditEntry, StoredObject, TokenRecord
from pweza.domain.runs import Run, RunEvent, StepApproval, StepError, StepRun
from pweza.domain.tasks import Attempt, CallEntry, Task, TaskError
from pweza.store import schema

R = TypeVar("R")
Convert = Callable[[Any], Any]
_PLAIN: typing.Final = (str, int, float)


class Row(Protocol):
    """A result row by column name: a mapping, or SQLite's own row type."""

    def __getitem__(self, key: str, /) -> Any: ...


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


# Records stored as the JSON of their `to_dict`, read back with their `from_dict`.
_AS_DICT: typing.Final = (TaskError, StepError, StepApproval)


def _dump_as_dict(record: TaskError | StepError | StepApproval) -> str:
    return dumps(record.to_dict())


def _loader(kind: type[TaskError] | type[StepError] | type[StepApproval]) -> Convert:
    def load(text: str) -> Any:
        return kind.from_dict(orjson.loads(text))

    return load


def _dump_model(model: BaseModel) -> str:
    return model.model_dump_json()


def _without_none(hint: Any) -> Any:
    """`X` of `X | None`; any other hint unchanged."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return hint


def _converters(hint: Any) -> tuple[Convert | None, Convert | None]:
    """(encode, decode) for a field of type `hint`, None where the value is stored as it is."""
    kind = _without_none(hint)
    if kind is bool:
        return None, bool  # SQLite hands back 0 and 1
    if kind in _PLAIN:
        return None, None
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return attrgetter("value"), kind
    if kind in _AS_DICT:
        return _dump_as_dict, _loader(kind)
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        # By field name, as stored before the field was typed (the models accept both spellings).
        return _dump_model, kind.model_validate_json
    return dumps, orjson.loads


class RowCodec(Generic[R]):
    """Converts records of one dataclass to rows of one table and back.

    Both directions are compiled into one Python function each, as `dataclasses` does for
    `__init__`: a task is encoded on every state change, and a loop over the fields costs
    three times the hand-written dict.
    """

    def __init__(self, record: type[R], table: Table) -> None:
        fields = dataclasses.fields(record)  # type: ignore[arg-type]
        names = [field.name for field in fields]
        columns = {column.name: column for column in table.columns}
        if set(names) != set(columns):
            raise TypeError(f"{record.__name__} and table {table.name} differ: {sorted(set(names) ^ set(columns))}")
        if not all(name.isidentifier() for name in names):
            raise TypeError(f"{record.__name__}: field names must be identifiers")
        # domain.tasks imports RetryPolicy only for type checking (see there), so it is named here.
        hints = typing.get_type_hints(record, localns={"RetryPolicy": RetryPolicy})
        generated = table.autoincrement_column
        # Written columns: all but a key the database generates (audit and event ids).
        self.written = tuple(name for name in names if generated is None or name != generated.name)
        scope: dict[str, Any] = {"record_type": record}
        encoded: list[str] = []
        for name in self.written:
            encode, _ = _converters(hints[name])
            if encode is None:
                encoded.append(f"{name!r}: record.{name}")
                continue
            scope[f"encode_{name}"] = encode
            if columns[name].nullable:  # a JSON column that may be NULL stores None as NULL, not "null"
                encoded.append(f"{name!r}: None if (value := record.{name}) is None else encode_{name}(value)")
            else:
                encoded.append(f"{name!r}: encode_{name}(record.{name})")
        decoded: list[str] = []
        for field in fields:
            name = field.name
            _, decode = _converters(hints[name])
            if field.default_factory is not dataclasses.MISSING:
                scope[f"decode_{name}"] = _or_default(decode, field.default_factory)
                decoded.append(f"decode_{name}(row[{name!r}])")
            elif decode is None:
                decoded.append(f"row[{name!r}]")
            else:
                scope[f"decode_{name}"] = decode
                decoded.append(f"None if (value := row[{name!r}]) is None else decode_{name}(value)")
        self.row: Callable[[R], dict[str, Any]] = _function("row", "record", "{" + ", ".join(encoded) + "}", scope)
        self.record: Callable[[Row], R] = _function("record", "row", "record_type(" + ", ".join(decoded) + ")", scope)


def _function(name: str, argument: str, expression: str, scope: dict[str, Any]) -> Any:
    """A function of one argument returning `expression`, evaluated with `scope`'s names."""
    namespace: dict[str, Any] = {}
    # The source holds only field names (checked to be identifiers) and names bound in `scope`.
    exec(f"def {name}({argument}):\n    return {expression}\n", dict(scope), namespace)
    return namespace[name]


def _or_default(decode: Convert | None, default: Callable[[], Any]) -> Convert:
    def decoded(value: Any) -> Any:
        if value is None:
            return default()
        converted = value if decode is None else decode(value)
        return default() if converted is None else converted

    return decoded


TASKS: typing.Final = RowCodec(Task, schema.tasks)
ATTEMPTS: typing.Final = RowCodec(Attempt, schema.attempts)
CALLS: typing.Final = RowCodec(CallEntry, schema.calls)
OBJECTS: typing.Final = RowCodec(StoredObject, schema.objects)
TOKENS: typing.Final = RowCodec(TokenRecord, schema.tokens)
AUDIT: typing.Final = RowCodec(AuditEntry, schema.audit)
RUNS: typing.Final = RowCodec(Run, schema.runs)
STEPS: typing.Final = RowCodec(StepRun, schema.run_steps)
EVENTS: typing.Final = RowCodec(RunEvent, schema.run_events)
