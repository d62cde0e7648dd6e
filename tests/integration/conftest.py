from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pweza.testing.postgres import ENSURE_COMMAND, PostgresServer, postgres_bin_dir

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the integration tests; each test makes its own database.
    Without PostgreSQL's binaries the tests that need it skip, except in CI, where they fail."""
    if postgres_bin_dir() is None:
        message = f"PostgreSQL is not installed: run {ENSURE_COMMAND}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with PostgresServer() as server:
        yield server
