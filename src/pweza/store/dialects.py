"""The few expressions SQLite and PostgreSQL spell differently, each rendered per dialect.

Every statement in `queries` is built once from `schema`'s tables; where the two databases
need different SQL for the same meaning, the statement uses one of these instead.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


def _only(element: FunctionElement[Any]) -> Any:
    (argument,) = element.clauses
    return argument


class byte_order(FunctionElement[str]):  # noqa: N801 - used like a SQL function
    """Its text argument compared byte by byte, whatever the database's default collation."""

    type = String()
    name = "byte_order"
    inherit_cache = True


@compiles(byte_order)
def _byte_order(element: byte_order, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(_only(element), **kw))  # SQLite's default collation is already bytes


@compiles(byte_order, "postgresql")
def _byte_order_postgresql(element: byte_order, compiler: SQLCompiler, **kw: Any) -> str:
    return f'{compiler.process(_only(element), **kw)} COLLATE "C"'


class json_text(FunctionElement[str]):  # noqa: N801 - used like a SQL function
    """The text of a top-level key of a JSON object held in a text column (NULL if absent)."""

    type = String()
    name = "json_text"
    inherit_cache = True


@compiles(json_text)
def _json_text(element: json_text, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = element.clauses
    return f"json_extract({compiler.process(column, **kw)}, '$.' || {compiler.process(key, **kw)})"


@compiles(json_text, "postgresql")
def _json_text_postgresql(element: json_text, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = element.clauses
    # jsonb(text) is PostgreSQL's function-style cast: the column is text.
    return f"jsonb_extract_path_text(jsonb({compiler.process(column, **kw)}), {compiler.process(key, **kw)})"


class unindexed(FunctionElement[str]):  # noqa: N801 - used like a SQL function
    """A text column SQLite's planner must not pick an index for (a unary +); PostgreSQL plans by statistics."""

    type = String()
    name = "unindexed"
    inherit_cache = True


@compiles(unindexed)
def _unindexed(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return f"+{compiler.process(_only(element), **kw)}"


@compiles(unindexed, "postgresql")
def _unindexed_postgresql(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(_only(element), **kw))
