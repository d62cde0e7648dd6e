"""The store contract suite runs against every backend listed in `BACKENDS`.

PostgreSQL runs as one throwaway server for the whole session (`postgres_server` in tests/conftest.py);
each test gets a fresh database on it. Without PostgreSQL's binaries its tests skip, except
in CI (CI=true) where they fail: install them with hack/ensure-postgres.sh.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from pweza.store.postgres import PostgresStore
from pweza.store.protocol import Store
from pweza.store.sqlite import SqliteStore
from pweza.testing.postgres import PostgresServer

_database_numbers = itertools.count(1)


def _sqlite(request: pytest.FixtureRequest, tmp: Path) -> Store:
    return SqliteStore(tmp / "contract.db")


def _postgres(request: pytest.FixtureRequest, tmp: Path) -> Store:
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"contract_{os.getpid()}_{next(_database_numbers)}"
    url = server.create_database(name)
    # Registered before the store fixture's own teardown, so it runs after the store is closed.
    request.addfinalizer(lambda: server.drop_database(name) if server.running else None)
    return PostgresStore(url, pool_size=4, max_overflow=2)


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], Store]] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    instance = BACKENDS[backend](request, tmp_path)
    await instance.open()
    yield instance
    await instance.close()


@pytest.fixture
def database_server(backend: str, request: pytest.FixtureRequest) -> PostgresServer:
    """The server behind `store`, for tests that take the database away; skips for embedded backends."""
    if backend != "postgres":
        pytest.skip(f"{backend} has no database server to stop")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server
