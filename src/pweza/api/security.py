"""Bearer-token authentication and role checks.

Each route names the permission it needs with a `Reader`, `Writer` or `Admin` parameter (that is
what OpenAPI shows). `GuardedRoute` (routing.py) finds that dependency and runs the check before
anything reads the body: FastAPI itself parses a pydantic body before it solves dependencies, so a
stranger would otherwise be told 422 about a body they may not send, after it was read in full.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pweza.domain.errors import Unauthenticated
from pweza.domain.roles import Permission
from pweza.manager.auth import Principal
from pweza.manager.service import Manager


def manager_of(request: Request) -> Manager:
    manager: Manager = request.app.state.manager
    return manager


ManagerDep = Annotated[Manager, Depends(manager_of)]


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token.strip()


# Only so that OpenAPI shows the bearer scheme on every route: `bearer` above reads the header.
_documented_scheme = HTTPBearer(auto_error=False, description="a token from `pweza token create`")


class Require:
    """The dependency that checks the caller's token for one permission.

    `authorize` is run by the route before the body is read; the dependency itself then only
    hands over the principal found then (or checks afresh when used outside a GuardedRoute)."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def authorize(self, request: Request) -> Principal:
        principal = await manager_of(request).authenticate(bearer(request))
        principal.require(self.permission)
        request.state.principal = principal
        return principal

    async def __call__(
        self,
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(_documented_scheme)],
    ) -> Principal:
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is not None:
            principal.require(self.permission)
            return principal
        return await self.authorize(request)


Reader = Annotated[Principal, Depends(Require(Permission.READ))]
Writer = Annotated[Principal, Depends(Require(Permission.WRITE))]
Admin = Annotated[Principal, Depends(Require(Permission.ADMIN))]
