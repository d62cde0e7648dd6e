"""The token verdict cache stays bounded: invalid tokens are not remembered at all, valid ones
up to `CACHE_SIZE`, least recently used first out; an evicted token still authenticates."""

from __future__ import annotations

import secrets

import pytest

from pweza.domain.errors import Unauthenticated
from pweza.domain.roles import Role
from pweza.manager import auth
from pweza.manager.service import Manager


async def test_many_distinct_invalid_tokens_leave_the_cache_empty(manager: Manager) -> None:
    for _ in range(2000):
        with pytest.raises(Unauthenticated):
            await manager.tokens.authenticate(auth.TOKEN_PREFIX + secrets.token_urlsafe(32))
    assert manager.tokens.cached == 0


async def test_valid_tokens_fill_the_cache_only_up_to_its_size(
    manager: Manager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "CACHE_SIZE", 8)
    secrets_made = [(await manager.tokens.create(f"t{i}", Role.VIEWER))[1] for i in range(20)]
    for secret in secrets_made:
        await manager.tokens.authenticate(secret)
    assert manager.tokens.cached == 8
    # The first ones were dropped from the cache, not refused.
    assert (await manager.tokens.authenticate(secrets_made[0])).name == "t0"
    assert manager.tokens.cached == 8
