"""Tokens and the audit log: admins only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from pweza.api.routing import GuardedRoute
from pweza.api.schemas import MAX_STORED_INT, TokenCreation, page
from pweza.api.security import Admin, ManagerDep

router = APIRouter(prefix="/api/v1", tags=["admin"], route_class=GuardedRoute)


@router.post("/tokens", status_code=201)
async def create_token(body: TokenCreation, manager: ManagerDep, who: Admin) -> dict[str, Any]:
    token_id, secret = await manager.create_token(who, body.name, body.role)
    return {"id": token_id, "name": body.name, "role": body.role.value, "token": secret}


@router.get("/tokens")
async def list_tokens(manager: ManagerDep, _: Admin) -> dict[str, Any]:
    records = await manager.tokens.list()
    items = [
        {
            "id": r.id,
            "name": r.name,
            "role": r.role.value,
            "createdAt": r.created_at,
            "revokedAt": r.revoked_at,
        }
        for r in records
    ]
    return page(items, None)


@router.delete("/tokens/{token_id}", status_code=204)
async def revoke_token(token_id: str, manager: ManagerDep, who: Admin) -> Response:
    await manager.tokens.revoke(token_id)
    await manager.audit(who, "token.revoke", token_id)
    return Response(status_code=204)


@router.get("/audit")
async def list_audit(
    manager: ManagerDep,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=0, le=MAX_STORED_INT, description="the `continue` of the previous page")
    ] = None,
) -> dict[str, Any]:
    entries = await manager.store.list_audit(limit + 1, before)
    more = len(entries) > limit
    entries = entries[:limit]
    items = [
        {"id": e.id, "at": e.at, "actor": e.actor, "action": e.action, "target": e.target, "detail": e.detail}
        for e in entries
    ]
    return page(items, entries[-1].id if more and entries else None)
