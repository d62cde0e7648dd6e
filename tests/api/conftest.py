"""A real manager on loopback for the API's hostile-client tests, shared by a module's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pweza.testing.platform import Platform, running_platform

# A small payload limit keeps the oversize bodies small: the body limit is 16 times it (1 MiB).
PAYLOAD_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def live() -> Iterator[Platform]:
    with running_platform(env={"PWEZA_MAX_PAYLOAD_BYTES": str(PAYLOAD_LIMIT)}) as instance:
        yield instance


@pytest.fixture(scope="module")
def viewer_token(live: Platform) -> str:
    with live.client() as client:
        response = client.post("/api/v1/tokens", json={"name": "a-viewer", "role": "viewer"})
        response.raise_for_status()
        return str(response.json()["token"])
