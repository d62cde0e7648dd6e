"""Shared fixtures: manifests, an in-process manager, real processes on loopback, a PostgreSQL server."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from pweza.api.app import create_app
from pweza.domain.roles import Role
from pweza.manager.config import Settings
from pweza.manager.service import Manager
from pweza.store.sqlite import SqliteStore
from pweza.testing.local_model import ENSURE_COMMAND as LOCAL_MODEL_COMMAND
from pweza.testing.local_model import LocalModel, local_model_dir
from pweza.testing.platform import Platform
from pweza.testing.postgres import ENSURE_COMMAND, PostgresServer, postgres_bin_dir

TESTS = Path(__file__).resolve().parent
# The marker every test under a directory carries, so `-m "not node and not k8s"` deselects the
# directory. (A `pytestmark` in a conftest.py marks nothing: only test modules' own count.)
DIRECTORY_MARKERS = {
    "integration": "integration",
    "k8s": "k8s",
    "chart": "chart",
    "node": "node",
    "llm": "llm",
    "images": "node",  # the node's container images, built and run as root like the node's
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = item.path.resolve()
        if path.is_relative_to(TESTS):
            directory = path.relative_to(TESTS).parts[0]
            marker = DIRECTORY_MARKERS.get(directory)
            if marker is not None and item.get_closest_marker(marker) is None:
                item.add_marker(marker)


def template(name: str = "echoer", handler: str = "pweza.testing.handlers:echo", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pweza.ai/v1",
        "kind": "AgentTemplate",
        "metadata": {"name": name},
        "spec": {"runtime": {"kind": "python", "handler": handler}, **spec},
    }


def pool(name: str = "echo", template_ref: str = "echoer", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pweza.ai/v1",
        "kind": "AgentPool",
        "metadata": {"name": name},
        "spec": {"templateRef": template_ref, **spec},
    }


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[Manager]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'pweza.db'}", max_payload_bytes=64 * 1024)
    instance = Manager(SqliteStore(tmp_path / "pweza.db"), settings)
    await instance.start()
    yield instance
    await instance.stop()


class Tokens(dict[Role, str]):
    """One bearer token per role."""


@pytest.fixture
async def tokens(manager: Manager) -> Tokens:
    result = Tokens()
    for role in Role:
        _, secret = await manager.create_token(None, f"test-{role.value}", role, any_pool=role is Role.AGENT)
        result[role] = secret
    return result


@pytest.fixture
async def api(manager: Manager, tokens: Tokens) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(manager))
    headers = {"Authorization": f"Bearer {tokens[Role.ADMIN]}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://manager", headers=headers) as client:
        yield client


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    instance = Platform(tmp_path)
    instance.start_manager()
    try:
        yield instance
    finally:
        instance.stop()


def in_ci() -> bool:
    """Whether this is a CI run (`CI` set, as CI services and `.ci/run` set it, to anything but 0 or false)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def missing(message: str) -> NoReturn:
    """The one way to say a test needs something absent: it skips, saying what is missing and
    how to get it; in CI, where nothing may skip (make test builds and installs all a test
    needs), it fails instead."""
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def local_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalModel]:
    """One real local model server for the session (SmolLM2 on llama.cpp, one thread).
    Not installed: the tests that need it skip, except in CI, where they fail."""
    if local_model_dir() is None:
        missing(f"the local model is not installed; run {LOCAL_MODEL_COMMAND}")
    with LocalModel(log_path=tmp_path_factory.mktemp("local-model") / "server.log") as model:
        yield model


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session; each test makes its own database.
    Without PostgreSQL's binaries the tests that need it skip, except in CI, where they fail."""
    if postgres_bin_dir() is None:
        missing(f"PostgreSQL is not installed: run {ENSURE_COMMAND}")
    with PostgresServer() as server:
        yield server


_database_numbers = itertools.count(1)


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh database on the session's server, dropped after the test (after the
    fixtures that use it have closed their connections)."""
    name = f"test_{os.getpid()}_{next(_database_numbers)}"
    url = postgres_server.create_database(name)
    yield url
    if postgres_server.running:
        postgres_server.drop_database(name)
