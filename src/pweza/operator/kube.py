"""A small async face on the Kubernetes dynamic client: apply, get, list, delete, patch status.

The official client is synchronous; calls run in worker threads so the operator's event
loop (kopf's) never blocks on the network.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import kopf
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError
from kubernetes.dynamic.resource import Resource

__all__ = ["ConflictError", "Kube", "NotFoundError"]


class Kube:
    def __init__(self, dynamic: DynamicClient, field_manager: str) -> None:
        self._dynamic = dynamic
        self.configuration: client.Configuration = dynamic.client.configuration
        self._field_manager = field_manager
        self._resources: dict[tuple[str, str], Resource] = {}

    @classmethod
    async def connect(cls, kubeconfig: str | None, field_manager: str) -> Kube:
        def build() -> DynamicClient:
            configuration = client.Configuration()
            if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config(client_configuration=configuration)
            else:
                config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
            return DynamicClient(client.ApiClient(configuration))

        return cls(await asyncio.to_thread(build), field_manager)

    def connection_info(self) -> kopf.ConnectionInfo:
        """The same credentials for kopf's own watches, whichever way they were loaded."""
        c = self.configuration
        authorization = (c.api_key or {}).get("authorization") or (c.api_key or {}).get("BearerToken")
        token = authorization.split(" ", 1)[-1] if authorization else None
        return kopf.ConnectionInfo(
            server=c.host,
            ca_path=c.ssl_ca_cert,
            insecure=not c.verify_ssl,
            certificate_path=c.cert_file,
            private_key_path=c.key_file,
            token=token,
            scheme="Bearer" if token else None,
        )

    def _resource(self, api_version: str, kind: str) -> Resource:
        key = (api_version, kind)
        if key not in self._resources:
            self._resources[key] = self._dynamic.resources.get(api_version=api_version, kind=kind)
        return self._resources[key]

    async def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply as the operator's field manager, taking fields back from anyone who
        changed them: that is what repairs drift (an edited replica count, a removed label)."""

        def run() -> dict[str, Any]:
            resource = self._resource(body["apiVersion"], body["kind"])
            meta = body["metadata"]
            result = resource.server_side_apply(
                body=body,
                name=meta["name"],
                namespace=meta.get("namespace"),
                field_manager=self._field_manager,
                force_conflicts=True,
            )
            return dict(result.to_dict())

        return await asyncio.to_thread(run)

    async def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        def run() -> dict[str, Any] | None:
            try:
                return dict(self._resource(api_version, kind).get(name=name, namespace=namespace).to_dict())
            except NotFoundError:
                return None

        return await asyncio.to_thread(run)

    async def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        def run() -> list[dict[str, Any]]:
            result = self._resource(api_version, kind).get(namespace=namespace, label_selector=label_selector)
            return [dict(item.to_dict()) for item in result.items]

        return await asyncio.to_thread(run)

    async def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool:
        def run() -> bool:
            try:
                self._resource(api_version, kind).delete(name=name, namespace=namespace)
                return True
            except NotFoundError:
                return False

        return await asyncio.to_thread(run)

    async def patch_status(
        self, api_version: str, kind: str, name: str, namespace: str, status: dict[str, Any]
    ) -> None:
        def run() -> None:
            resource = self._resource(api_version, kind).subresources["status"]
            resource.patch(
                body={"status": status},
                name=name,
                namespace=namespace,
                content_type="application/merge-patch+json",
            )

        await asyncio.to_thread(run)

    async def merge_patch(self, api_version: str, kind: str, name: str, namespace: str, body: dict[str, Any]) -> None:
        def run() -> None:
            self._resource(api_version, kind).patch(
                body=body, name=name, namespace=namespace, content_type="application/merge-patch+json"
            )

        await asyncio.to_thread(run)

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            resource = self._resource(body["apiVersion"], body["kind"])
            return dict(resource.create(body=body, namespace=body["metadata"].get("namespace")).to_dict())

        return await asyncio.to_thread(run)

    async def replace(self, body: dict[str, Any]) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            resource = self._resource(body["apiVersion"], body["kind"])
            return dict(resource.replace(body=body, namespace=body["metadata"].get("namespace")).to_dict())

        return await asyncio.to_thread(run)
