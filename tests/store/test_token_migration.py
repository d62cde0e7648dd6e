"""Migration 0006 (tokens get a pool and an expiry) keeps tokens made before it working as they did."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, text

from pweza.domain.roles import Role
from pweza.manager.auth import TokenService, hash_token
from pweza.store import migrating
from pweza.store.sqlite import SqliteStore


async def test_tokens_from_before_0006_serve_any_pool_and_never_expire(tmp_path: Path) -> None:
    path = tmp_path / "pweza.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        command.upgrade(migrating._config(connection), "0005")
        connection.execute(
            text("INSERT INTO tokens VALUES ('old1', 'agents', 'agent', :hash, 1.0, NULL)"),
            {"hash": hash_token("pwz_old")},
        )
    engine.dispose()
    store = SqliteStore(path)
    await store.open()  # migrates to the head
    try:
        principal = await TokenService(store).authenticate("pwz_old")
        assert (principal.role, principal.pool, principal.expires_at) == (Role.AGENT, None, None)
        principal.require_pool("any", "pool")
        [record] = await store.list_tokens()
        assert (record.pool, record.expires_at) == (None, None)
    finally:
        await store.close()
