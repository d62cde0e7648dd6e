"""Who the caller is (any reader), tokens and the audit log (admins only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from pweza.api.responses import AuditInfo, Caller, NamespaceUsage, NewToken, Page, TokenInfo
from pweza.api.routing import GuardedRoute
from pweza.api.schemas import MAX_STORED_INT, TokenCreation, page, spent_json, token_json
from pweza.api.security import Admin, ManagerDep, Reader
from pweza.domain.manifests import Name
from pweza.domain.roles import GRANTS
from pweza.manager.auth import pool_ref

router = APIRouter(prefix="/api/v1", tags=["admin"], route_class=GuardedRoute)


@router.get("/whoami", response_model=Caller)
async def whoami(who: Reader) -> dict[str, Any]:
    """The caller's token: its name, role and what the role may do (the web UI hides what it may not)."""
    allowed = sorted(permission.value for permission in GRANTS[who.role])
    return {"name": who.name, "role": who.role.value, "permissions": allowed, "expiresAt": who.expires_at}


@router.get("/namespaces/{namespace}/usage", response_model=NamespaceUsage)
async def namespace_usage(namespace: Name, manager: ManagerDep, _: Reader) -> dict[str, Any]:
    """What a namespace's model calls used within its budget's period (else the last 24h), beside that budget
    (the manager's `budgets.namespaces`)."""
    budget, period, spent = await manager.queries.namespace_usage(namespace)
    limits = {} if budget is None else budget.model_dump(by_alias=True, exclude_none=True)
    return spent_json(spent, limits) | {"namespace": namespace, "period": period}


@router.post("/tokens", status_code=201, response_model=NewToken)
async def create_token(body: TokenCreation, manager: ManagerDep, who: Admin) -> dict[str, Any]:
    pool = None if body.pool is None else pool_ref(body.pool, body.namespace)
    record, secret = await manager.create_token(
        who, body.name, body.role, pool=pool, any_pool=body.any_pool, ttl_seconds=body.ttl_seconds()
    )
    return token_json(record) | {"token": secret}


@router.get("/tokens", response_model=Page[TokenInfo])
async def list_tokens(manager: ManagerDep, _: Admin) -> dict[str, Any]:
    return page([token_json(record) for record in await manager.queries.tokens()], None)


@router.delete("/tokens/{token_id}", status_code=204)
async def revoke_token(token_id: str, manager: ManagerDep, who: Admin) -> Response:
    await manager.revoke_token(who, token_id)
    return Response(status_code=204)


@router.get("/audit", response_model=Page[AuditInfo])
async def list_audit(
    manager: ManagerDep,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=0, le=MAX_STORED_INT, description="the `continue` of the previous page")
    ] = None,
) -> dict[str, Any]:
    entries = await manager.queries.audit(limit + 1, before)
    more = len(entries) > limit
    entries = entries[:limit]
    items = [
        {"id": e.id, "at": e.at, "actor": e.actor, "action": e.action, "target": e.target, "detail": e.detail}
        for e in entries
    ]
    return page(items, entries[-1].id if more and entries else None)
