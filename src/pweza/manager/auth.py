"""Bearer tokens: created once, stored only as a SHA-256 hash, revocable, expiring.

An agent token is bound to one pool (`namespace/pool`): the agent channel refuses a hello for
any other. A token for every pool is made only when asked for explicitly (`any_pool`); agent
tokens made before pools were bound have no pool and keep serving any pool until revoked.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from pweza.domain.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from pweza.domain.manifests import DNS_LABEL
from pweza.domain.records import TokenRecord
from pweza.domain.roles import Permission, Role, allows
from pweza.store.protocol import Store

TOKEN_PREFIX = "pwz_"
# A cached verdict is trusted this long, bounding how late another replica sees a revocation.
_CACHE_SECONDS = 5.0
# The most valid tokens remembered at once, the least recently used dropped first. Invalid ones
# are never remembered: anyone can present any number of them, and each would stay.
CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: str
    name: str
    role: Role
    # Agent tokens: the pool ("namespace/pool") the token may serve; None: any pool.
    pool: str | None = None
    expires_at: float | None = None

    def require(self, permission: Permission) -> None:
        if not allows(self.role, permission):
            raise Forbidden(f"role {self.role.value!r} may not do this (needs {permission.value!r})")

    def require_pool(self, namespace: str, pool: str) -> None:
        """An agent token serves only the pool it was made for."""
        if self.pool is not None and self.pool != f"{namespace}/{pool}":
            raise Forbidden(
                f"token {self.token_id} ({self.name}) is for pool {self.pool}, not {namespace}/{pool}", field="pool"
            )


def hash_token(secret: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def pool_ref(text: str, namespace: str | None = None) -> str:
    """`NS/POOL`, or `POOL` with `namespace` (default "default"), as "namespace/pool"."""
    ns, slash, name = text.rpartition("/")
    if slash and namespace is not None and namespace != ns:
        raise InvalidInput(f"pool {text!r} names namespace {ns!r} but namespace {namespace!r} was given", field="pool")
    ns = ns if slash else (namespace or "default")
    for part, what in ((ns, "namespace"), (name, "pool")):
        if not (0 < len(part) <= 63 and re.fullmatch(DNS_LABEL, part)):
            raise InvalidInput(f"{what} {part!r} in {text!r} is not a valid name (a DNS label)", field="pool")
    return f"{ns}/{name}"


class TokenService:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    async def create(
        self,
        name: str,
        role: Role,
        *,
        pool: str | None = None,
        any_pool: bool = False,
        ttl_seconds: float | None = None,
    ) -> tuple[TokenRecord, str]:
        """A new token; `pool` ("namespace/pool") binds an agent token to that pool, and an agent
        token needs either that or `any_pool`. `ttl_seconds` None: it never expires."""
        if role is Role.AGENT:
            if (pool is None) == (not any_pool):
                raise InvalidInput(
                    "an agent token is bound to one pool: give the pool (NS/POOL), or ask for any pool explicitly",
                    field="pool",
                )
        elif pool is not None or any_pool:
            raise InvalidInput(f"only agent tokens have a pool, not role {role.value!r}", field="pool")
        if ttl_seconds is not None and ttl_seconds <= 0:
            raise InvalidInput("a token's lifetime must be positive", field="ttl")
        now = time.time()
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = TokenRecord(
            id=uuid.uuid4().hex[:12],
            name=name,
            role=role,
            hash=hash_token(secret),
            created_at=now,
            pool=pool,
            expires_at=None if ttl_seconds is None else now + ttl_seconds,
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
            self._cache.move_to_end(digest)
            principal = cached[1]
        else:
            self._cache.pop(digest, None)
            record = await self._store.find_token(digest)
            if record is None or record.revoked_at is not None:
                raise Unauthenticated("invalid or revoked token")
            principal = Principal(record.id, record.name, record.role, record.pool, record.expires_at)
            self._cache[digest] = (now, principal)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        if principal.expires_at is not None and time.time() >= principal.expires_at:
            raise Unauthenticated("token expired")
        return principal

    @property
    def cached(self) -> int:
        """How many verdicts are remembered now (at most `CACHE_SIZE`)."""
        return len(self._cache)

    async def list(self) -> list[TokenRecord]:
        return await self._store.list_tokens()

    async def revoke(self, token_id: str) -> None:
        if not await self._store.revoke_token(token_id, time.time()):
            raise NotFound(f"token {token_id} not found or already revoked")
        self._cache.clear()
