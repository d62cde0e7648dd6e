"""GET /api/v1/whoami: the caller's token as the web UI needs it, to hide what the role may not do."""

from __future__ import annotations

import httpx

from pweza.domain.roles import Role
from tests.conftest import Tokens


async def test_whoami_names_the_callers_role_and_its_permissions(api: httpx.AsyncClient, tokens: Tokens) -> None:
    viewer = await api.get("/api/v1/whoami", headers={"Authorization": f"Bearer {tokens[Role.VIEWER]}"})
    assert viewer.status_code == 200
    assert viewer.json() == {"name": "test-viewer", "role": "viewer", "permissions": ["read"], "expiresAt": None}
    operator = await api.get("/api/v1/whoami", headers={"Authorization": f"Bearer {tokens[Role.OPERATOR]}"})
    assert operator.json()["permissions"] == ["read", "write"]


async def test_whoami_needs_a_token(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/v1/whoami", headers={"Authorization": ""})).status_code == 401
