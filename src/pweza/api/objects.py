"""Create, replace, get, list and delete the pweza.ai/v1 objects."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from pweza.api.routing import GuardedRoute
from pweza.api.schemas import page
from pweza.api.security import ManagerDep, Reader, Writer
from pweza.domain.errors import Conflict, InvalidInput, NotFound
from pweza.domain.kinds import PLURALS, parse_manifest
from pweza.domain.manifests import Name
from pweza.domain.records import StoredObject
from pweza.manager.registry import with_server_fields

router = APIRouter(prefix="/api/v1", tags=["objects"], route_class=GuardedRoute)
Namespace = Annotated[str, Query(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
Limit = Annotated[int, Query(ge=1, le=1000)]


def object_json(stored: StoredObject) -> dict[str, Any]:
    """The object with what the manager adds: its generation and, as Kubernetes has it, creationTimestamp."""
    body = with_server_fields(stored)
    body["metadata"]["creationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stored.created_at))
    return body


def _kind(plural: str) -> str:
    kind = PLURALS.get(plural)
    if kind is None:
        raise NotFound(f"no such resource {plural!r}; known: {', '.join(sorted(PLURALS))}")
    return kind


@router.get("/{plural}")
async def list_objects(
    plural: str,
    manager: ManagerDep,
    _: Reader,
    namespace: Namespace | None = None,
    limit: Limit = 100,
    continue_: Annotated[str | None, Query(alias="continue")] = None,
) -> dict[str, Any]:
    kind = _kind(plural)
    stored = await manager.registry.list(kind, namespace, limit + 1, continue_)
    more = len(stored) > limit
    stored = stored[:limit]
    next_key = f"{stored[-1].namespace}/{stored[-1].name}" if more and stored else None
    return page([object_json(item) for item in stored], next_key)


@router.post("/{plural}", status_code=201)
async def create_object(
    plural: str, manager: ManagerDep, who: Writer, document: Annotated[Any, Body()]
) -> dict[str, Any]:
    kind = _kind(plural)
    manifest = parse_manifest(document, expected_kind=kind)
    if await manager.registry.find(kind, *manifest.key) is not None:
        raise Conflict(f"{kind} {'/'.join(manifest.key)} already exists; use PUT to replace it")
    stored, warnings = await manager.registry.apply(manifest)
    await manager.audit(who, f"{kind.lower()}.create", "/".join(manifest.key))
    return {"object": object_json(stored), "warnings": warnings}


@router.put("/{plural}/{name}")
async def replace_object(
    plural: str,
    name: Name,
    manager: ManagerDep,
    who: Writer,
    response: Response,
    document: Annotated[Any, Body()],
) -> dict[str, Any]:
    kind = _kind(plural)
    manifest = parse_manifest(document, expected_kind=kind)
    if manifest.metadata.name != name:
        raise InvalidInput(
            f"metadata.name {manifest.metadata.name!r} differs from the name in the URL {name!r}",
            field="metadata.name",
        )
    existed = await manager.registry.find(kind, *manifest.key)
    stored, warnings = await manager.registry.apply(manifest)
    if existed is None:
        response.status_code = 201
    changed = existed is None or existed.generation != stored.generation
    if changed:
        await manager.audit(who, f"{kind.lower()}.apply", "/".join(manifest.key), generation=stored.generation)
    return {"object": object_json(stored), "warnings": warnings, "changed": changed}


@router.get("/{plural}/{name}")
async def get_object(
    plural: str, name: Name, manager: ManagerDep, _: Reader, namespace: Namespace = "default"
) -> dict[str, Any]:
    stored = await manager.registry.get(_kind(plural), namespace, name)
    return object_json(stored)


@router.delete("/{plural}/{name}", status_code=204)
async def delete_object(
    plural: str, name: Name, manager: ManagerDep, who: Writer, namespace: Namespace = "default"
) -> Response:
    kind = _kind(plural)
    await manager.registry.delete(kind, namespace, name)
    await manager.audit(who, f"{kind.lower()}.delete", f"{namespace}/{name}")
    return Response(status_code=204)
