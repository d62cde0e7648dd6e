"""`queries`' statements compiled once for SQLite and run on the writer's own connection.

The writer keeps its plain `sqlite3` connection (no SQLAlchemy per call, which would cost
more than the write itself): a statement is compiled to SQL text with named parameters the
first time it is used, and a `codec` row binds it as it is.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

from sqlalchemy import Executable, Insert, Table
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

_DIALECT: Final = sqlite.dialect(paramstyle="named")
_NO_PARAMS: Final[Mapping[str, Any]] = {}


class _Compiled:
    """A statement's SQL text, and the values it binds itself (constants such as states)."""

    __slots__ = ("compiled", "defaults", "expanding", "sql")

    def __init__(self, statement: Executable) -> None:
        keys = None
        if isinstance(statement, Insert):
            # An insert binds every column but a key the database generates, as `codec` rows do.
            table = cast("Table", statement.table)
            keys = [column.key for column in table.columns if column is not table.autoincrement_column]
        compiled = cast("ClauseElement", statement).compile(dialect=_DIALECT, column_keys=keys)
        self.compiled = cast("SQLCompiler", compiled)
        self.sql = self.compiled.string
        binds = self.compiled.bind_names
        self.defaults = {name: bind.effective_value for bind, name in binds.items() if not bind.required}
        # An IN (...) of a list parameter: the text depends on the list's length, so is rendered per call.
        self.expanding = "__[POSTCOMPILE_" in self.sql

    def bind(self, params: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
        if self.expanding:
            state = self.compiled.construct_expanded_state(params)
            return str(state.statement), state.parameters
        return self.sql, ({**self.defaults, **params} if self.defaults else params)


# By identity: statements are `queries`' constants or its cached builders' results, so few.
_cache: dict[int, tuple[Executable, _Compiled]] = {}


def _compiled(statement: Executable) -> _Compiled:
    found = _cache.get(id(statement))
    if found is None or found[0] is not statement:
        found = _cache[id(statement)] = (statement, _Compiled(statement))
    return found[1]


def execute(
    connection: sqlite3.Connection, statement: Executable, params: Mapping[str, Any] = _NO_PARAMS
) -> sqlite3.Cursor:
    sql, values = _compiled(statement).bind(params)
    return connection.execute(sql, values)


def execute_many(connection: sqlite3.Connection, statement: Executable, rows: Sequence[Mapping[str, Any]]) -> None:
    """One statement per row; the statement binds nothing but the rows' values."""
    compiled = _compiled(statement)
    if compiled.defaults or compiled.expanding:
        raise ValueError("a bulk statement binds only its rows")
    connection.executemany(compiled.sql, rows)


def fetch_all(
    connection: sqlite3.Connection, statement: Executable, params: Mapping[str, Any] = _NO_PARAMS
) -> list[sqlite3.Row]:
    return execute(connection, statement, params).fetchall()


def fetch_one(
    connection: sqlite3.Connection, statement: Executable, params: Mapping[str, Any] = _NO_PARAMS
) -> sqlite3.Row | None:
    """The first row of a SELECT. (Not of a DML statement with RETURNING: use `fetch_all`, which runs it to its end.)

    Steps the statement once only: every step releases the GIL, and taking it back from a busy
    event loop can cost the writer milliseconds.
    """
    row: sqlite3.Row | None = execute(connection, statement, params).fetchone()
    return row
