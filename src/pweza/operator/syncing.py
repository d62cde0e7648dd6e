"""Mirroring custom resources into the Core Manager's registry over its REST API.

Custom resources hold intent; the manager needs the same templates, pools and workflows
to dispatch work and run workflows, so the operator writes them there (by namespace/name,
with the resource's generation recorded in an annotation).
"""

from __future__ import annotations

from typing import Any

import httpx

PLURALS = {
    "AgentTemplate": "agenttemplates",
    "AgentPool": "agentpools",
    "Workflow": "workflows",
    "ToolServer": "toolservers",
    "ModelConfig": "modelconfigs",
}
GENERATION_ANNOTATION = "pweza.ai/cr-generation"


class ManagerRejected(Exception):
    """The manager refused the object; the message names the field."""


def manifest_for_manager(body: dict[str, Any]) -> dict[str, Any]:
    meta = body["metadata"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith("pweza.ai/")}
    annotations[GENERATION_ANNOTATION] = str(meta.get("generation", 0))
    return {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace", "default"),
            "labels": meta.get("labels") or {},
            "annotations": annotations,
        },
        "spec": body["spec"],
    }


class ManagerSync:
    def __init__(self, url: str, token: str | None, timeout: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    async def close(self) -> None:
        await self._http.aclose()

    async def put(self, body: dict[str, Any]) -> int:
        """Register the object; returns the manager's generation of it."""
        manifest = manifest_for_manager(body)
        meta = manifest["metadata"]
        response = await self._http.put(
            f"/api/v1/{PLURALS[manifest['kind']]}/{meta['name']}",
            params={"namespace": meta["namespace"]},
            json=manifest,
        )
        if response.status_code in (400, 404, 409, 413, 422):
            detail = response.json().get("detail", response.text) if response.content else response.reason_phrase
            raise ManagerRejected(str(detail))
        response.raise_for_status()
        return int(response.json()["object"]["metadata"]["generation"])

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        response = await self._http.delete(f"/api/v1/{PLURALS[kind]}/{name}", params={"namespace": namespace})
        if response.status_code not in (204, 404, 409):
            response.raise_for_status()

    async def status_of(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """The status the manager serves for the object as it is now ({} when it has none, or one
        made for an earlier generation)."""
        response = await self._http.get(f"/api/v1/{PLURALS[kind]}/{name}", params={"namespace": namespace})
        response.raise_for_status()
        document = response.json()
        status: dict[str, Any] = document.get("status") or {}
        return status if status.get("observedGeneration") == document["metadata"].get("generation") else {}

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """The manager's view of an object (a ModelConfig's with its status)."""
        response = await self._http.get(f"/api/v1/{PLURALS[kind]}/{name}", params={"namespace": namespace})
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    async def recent_runs(self, namespace: str, workflow: str, limit: int = 5) -> list[dict[str, Any]]:
        response = await self._http.get(
            "/api/v1/runs", params={"namespace": namespace, "workflow": workflow, "limit": limit}
        )
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items
