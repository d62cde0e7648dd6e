"""The store contract suite runs against every backend listed in `BACKENDS`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from pweza.store.protocol import Store
from pweza.store.sqlite import SqliteStore

BACKENDS: dict[str, Callable[[Path], Store]] = {
    "sqlite": lambda tmp: SqliteStore(tmp / "contract.db"),
}


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend = BACKENDS[request.param](tmp_path)
    await backend.open()
    yield backend
    await backend.close()
