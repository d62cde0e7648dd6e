"""Create, replace, get, list and delete the pweza.ai/v1 objects."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from pweza.api import problems
from pweza.api.responses import Applied, Created, ObjectDocument, Page
from pweza.api.routing import GuardedRoute
from pweza.api.schemas import page
from pweza.api.security import ManagerDep, Reader, Writer
from pweza.domain.errors import InvalidInput, NotFound
from pweza.domain.kinds import PLURALS, parse_manifest
from pweza.domain.manifests import Name
from pweza.manager.queries import object_document

router = APIRouter(prefix="/api/v1", tags=["objects"], route_class=GuardedRoute)
Namespace = Annotated[str, Query(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
Limit = Annotated[int, Query(ge=1, le=1000)]


def _kind(plural: str) -> str:
    kind = PLURALS.get(plural)
    if kind is None:
        raise NotFound(f"no such resource {plural!r}; known: {', '.join(sorted(PLURALS))}")
    return kind


@router.get("/{plural}", response_model=Page[ObjectDocument])
async def list_objects(
    plural: str,
    manager: ManagerDep,
    _: Reader,
    namespace: Namespace | None = None,
    limit: Limit = 100,
    continue_: Annotated[str | None, Query(alias="continue")] = None,
) -> dict[str, Any]:
    kind = _kind(plural)
    stored = await manager.queries.objects(kind, namespace, limit + 1, continue_)
    more = len(stored) > limit
    stored = stored[:limit]
    next_key = f"{stored[-1].namespace}/{stored[-1].name}" if more and stored else None
    return page([object_document(item) for item in stored], next_key)


@router.post("/{plural}", status_code=201, response_model=Created, responses=problems.responses(409))
async def create_object(
    plural: str, manager: ManagerDep, who: Writer, document: Annotated[Any, Body()]
) -> dict[str, Any]:
    manifest = parse_manifest(document, expected_kind=_kind(plural))
    stored, warnings = await manager.create_object(who, manifest)
    return {"object": object_document(stored), "warnings": warnings}


@router.put(
    "/{plural}/{name}",
    response_model=Applied,
    responses={201: {"model": Applied, "description": "it did not exist: created"}},
)
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
    applied = await manager.apply_object(who, manifest)
    if applied.created:
        response.status_code = 201
    return {"object": object_document(applied.stored), "warnings": applied.warnings, "changed": applied.changed}


@router.get("/{plural}/{name}", response_model=ObjectDocument)
async def get_object(
    plural: str, name: Name, manager: ManagerDep, _: Reader, namespace: Namespace = "default"
) -> dict[str, Any]:
    return object_document(await manager.queries.object(_kind(plural), namespace, name))


@router.delete("/{plural}/{name}", status_code=204, responses=problems.responses(409))
async def delete_object(
    plural: str, name: Name, manager: ManagerDep, who: Writer, namespace: Namespace = "default"
) -> Response:
    await manager.delete_object(who, _kind(plural), namespace, name)
    return Response(status_code=204)
