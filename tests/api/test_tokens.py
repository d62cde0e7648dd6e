"""Tokens: agent tokens bound to a pool, lifetimes, expiry; through the API and the CLI."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from pweza.cli.main import app
from pweza.domain.durations import parse_ttl
from pweza.domain.roles import Role
from pweza.manager.auth import TokenService
from pweza.manager.service import Manager
from pweza.store.sqlite import SqliteStore
from pweza.testing import eventually_async


async def test_an_agent_token_names_its_pool_or_asks_for_any(api: httpx.AsyncClient) -> None:
    refused = await api.post("/api/v1/tokens", json={"name": "a", "role": "agent"})
    assert refused.status_code == 422 and refused.json()["field"] == "pool"
    bound = await api.post("/api/v1/tokens", json={"name": "a", "role": "agent", "pool": "writers", "namespace": "t"})
    assert bound.status_code == 201
    assert {k: bound.json()[k] for k in ("role", "pool", "anyPool")} == {
        "role": "agent",
        "pool": "t/writers",
        "anyPool": False,
    }
    both = await api.post(
        "/api/v1/tokens", json={"name": "a", "role": "agent", "pool": "t/writers", "namespace": "other"}
    )
    assert both.status_code == 422
    anyone = await api.post("/api/v1/tokens", json={"name": "b", "role": "agent", "anyPool": True})
    assert anyone.status_code == 201 and anyone.json()["anyPool"] is True and anyone.json()["pool"] is None
    viewer = await api.post("/api/v1/tokens", json={"name": "v", "role": "viewer", "pool": "t/writers"})
    assert viewer.status_code == 422 and "only agent tokens" in viewer.json()["detail"]
    bad = await api.post("/api/v1/tokens", json={"name": "a", "role": "agent", "pool": "Not_A/Name"})
    assert bad.status_code == 422


async def test_tokens_expire_after_their_ttl_unless_made_to_last(api: httpx.AsyncClient) -> None:
    before = time.time()
    default = (await api.post("/api/v1/tokens", json={"name": "d", "role": "viewer"})).json()
    assert before + 89 * 86400 < default["expiresAt"] < time.time() + 91 * 86400  # 90 days unless told
    forever = (await api.post("/api/v1/tokens", json={"name": "f", "role": "viewer", "ttl": "never"})).json()
    assert forever["expiresAt"] is None
    short = (await api.post("/api/v1/tokens", json={"name": "s", "role": "viewer", "ttl": "1s"})).json()
    headers = {"Authorization": f"Bearer {short['token']}"}
    assert (await api.get("/api/v1/agentpools", headers=headers)).status_code == 200

    async def refused() -> httpx.Response | None:
        response = await api.get("/api/v1/agentpools", headers=headers)
        return response if response.status_code == 401 else None

    expired = await eventually_async(refused, timeout=10, what="the one-second token to expire")
    assert expired is not None and expired.json()["detail"] == "token expired"
    listed = {item["name"]: item for item in (await api.get("/api/v1/tokens")).json()["items"]}
    assert listed["f"]["expiresAt"] is None and listed["s"]["expiresAt"] == short["expiresAt"]
    bad = await api.post("/api/v1/tokens", json={"name": "x", "role": "viewer", "ttl": "soon"})
    assert bad.status_code == 422 and bad.json()["field"] == "ttl"


def test_ttls_are_read_with_days_and_never() -> None:
    assert parse_ttl("30d") == 30 * 86400 and parse_ttl("1d12h") == 36 * 3600 and parse_ttl("90m") == 5400
    assert parse_ttl("never") is None and parse_ttl(" Never ") is None
    for wrong in ("", "0s", "30", "1w", "-1d", "never ever"):
        with pytest.raises(ValueError, match="token lifetime"):
            parse_ttl(wrong)


async def test_a_principal_knows_its_pool(manager: Manager) -> None:
    _, secret = await manager.create_token(None, "w", Role.AGENT, pool="team-a/writers")
    principal = await manager.tokens.authenticate(secret)
    assert principal.pool == "team-a/writers"
    principal.require_pool("team-a", "writers")
    with pytest.raises(Exception, match="is for pool team-a/writers, not team-a/readers"):
        principal.require_pool("team-a", "readers")


def test_the_cli_binds_agent_tokens_and_sets_their_lifetime(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pweza.db'}"
    runner = CliRunner()
    refused = runner.invoke(app, ["token", "create", "--role", "agent", "--database-url", url])
    assert refused.exit_code == 2 and "--pool" in refused.output
    made = runner.invoke(
        app,
        [
            "token",
            "create",
            "--role",
            "agent",
            "--pool",
            "writers",
            "-n",
            "team-a",
            "--ttl",
            "30d",
            "--database-url",
            url,
        ],
    )
    assert made.exit_code == 0, made.output
    forever = runner.invoke(
        app, ["token", "create", "--role", "agent", "--any-pool", "--ttl", "never", "--database-url", url]
    )
    assert forever.exit_code == 0, forever.output
    wrong = runner.invoke(app, ["token", "create", "--role", "admin", "--pool", "a/b", "--database-url", url])
    assert wrong.exit_code == 2
    bad_ttl = runner.invoke(app, ["token", "create", "--role", "admin", "--ttl", "0d", "--database-url", url])
    assert bad_ttl.exit_code == 2 and "token lifetime" in bad_ttl.output

    async def stored() -> list[tuple[str | None, float | None]]:
        store = SqliteStore(tmp_path / "pweza.db")
        await store.open()
        try:
            records = await TokenService(store).list()
        finally:
            await store.close()
        return [
            (r.pool, None if r.expires_at is None else round((r.expires_at - r.created_at) / 86400)) for r in records
        ]

    assert asyncio.run(stored()) == [("team-a/writers", 30), (None, None)]
