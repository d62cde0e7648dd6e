"""Bearer tokens: created once, stored only as a SHA-256 hash, revocable."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

from pweza.domain.errors import Forbidden, NotFound, Unauthenticated
from pweza.domain.records import TokenRecord
from pweza.domain.roles import Permission, Role, allows
from pweza.store.protocol import Store

TOKEN_PREFIX = "pwz_"
# A cached verdict is trusted this long, bounding how late another replica sees a revocation.
_CACHE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: str
    name: str
    role: Role

    def require(self, permission: Permission) -> None:
        if not allows(self.role, permission):
            raise Forbidden(f"role {self.role.value!r} may not do this (needs {permission.value!r})")


def hash_token(secret: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenService:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def create(self, name: str, role: Role) -> tuple[TokenRecord, str]:
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = TokenRecord(
            id=uuid.uuid4().hex[:12], name=name, role=role, hash=hash_token(secret), created_at=time.time()
        )
        await self._store.insert_token(record)
        return record, secret

    async def authenticate(self, secret: str | None) -> Principal:
        if not secret:
            raise Unauthenticated("missing bearer token; send 'Authorization: Bearer <token>'")
        digest = hash_token(secret)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < _CACHE_SECONDS:
            principal = cached[1]
        else:
            record = await self._store.find_token(digest)
            principal = (
                None
                if record is None or record.revoked_at is not None
                else Principal(record.id, record.name, record.role)
            )
            self._cache[digest] = (now, principal)
        if principal is None:
            raise Unauthenticated("invalid or revoked token")
        return principal

    async def list(self) -> list[TokenRecord]:
        return await self._store.list_tokens()

    async def revoke(self, token_id: str) -> None:
        if not await self._store.revoke_token(token_id, time.time()):
            raise NotFound(f"token {token_id} not found or already revoked")
        self._cache.clear()
