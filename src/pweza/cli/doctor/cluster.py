# The official Kubernetes client ships py.typed but leaves most of its functions unannotated.
# mypy: disable-error-code="no-untyped-call"
"""The cluster as the checks see it: a few read-only calls, answered as plain values."""

from __future__ import annotations

import os
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

__all__ = ["Cluster"]


class Cluster:
    """The few read-only calls the checks make."""

    def __init__(self, api: Any) -> None:
        self._api = api

    @classmethod
    def connect(cls, kubeconfig: str | None, context: str | None) -> Cluster:
        if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return cls(client.ApiClient(configuration))
        return cls(config.new_client_from_config(config_file=kubeconfig, context=context))

    def _plain(self, result: object) -> Any:
        """The JSON form of a client model: plain dicts and lists, as the API sent them."""
        return self._api.sanitize_for_serialization(result)

    def version(self) -> str:
        return str(self._plain(client.VersionApi(self._api).get_code(_request_timeout=10))["gitVersion"])

    def group_versions(self) -> set[str]:
        """Every served "group/version", the core "v1" included."""
        core = self._plain(client.CoreApi(self._api).get_api_versions(_request_timeout=10))
        groups = self._plain(client.ApisApi(self._api).get_api_versions(_request_timeout=10))
        served = {str(version) for version in core["versions"]}
        for group in groups["groups"]:
            served.update(str(version["groupVersion"]) for version in group["versions"])
        return served

    def storage_classes(self) -> list[tuple[str, bool, str]]:
        items = self._plain(client.StorageV1Api(self._api).list_storage_class(_request_timeout=10))["items"]
        result = []
        for item in items:
            annotations = item["metadata"].get("annotations") or {}
            default = "true" in (
                annotations.get("storageclass.kubernetes.io/is-default-class"),
                annotations.get("storageclass.beta.kubernetes.io/is-default-class"),
            )
            result.append((str(item["metadata"]["name"]), default, str(item["provisioner"])))
        return result

    def csi_drivers(self) -> set[str]:
        items = self._plain(client.StorageV1Api(self._api).list_csi_driver(_request_timeout=10))["items"]
        return {str(item["metadata"]["name"]) for item in items}

    def ingress_classes(self) -> set[str]:
        items = self._plain(client.NetworkingV1Api(self._api).list_ingress_class(_request_timeout=10))["items"]
        return {str(item["metadata"]["name"]) for item in items}

    def api_resources(self, group_version: str) -> set[str]:
        """The plural resource names a served "group/version" has (its CRDs' kinds, for a CRD group)."""
        group, version = group_version.split("/", 1)
        found = self._plain(client.CustomObjectsApi(self._api).get_api_resources(group, version, _request_timeout=10))
        return {str(item["name"]) for item in (found or {}).get("resources") or []}

    def secret_keys(self, namespace: str, name: str) -> set[str] | None:
        """The key names of a Secret (never its values), or None when it does not exist."""
        try:
            found = self._plain(
                client.CoreV1Api(self._api).read_namespaced_secret(name, namespace, _request_timeout=10)
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return set((found.get("data") or {}).keys())

    def namespace(self, name: str) -> tuple[dict[str, str], dict[str, str]] | None:
        """(labels, annotations) of a namespace, or None when it does not exist."""
        try:
            found = self._plain(client.CoreV1Api(self._api).read_namespace(name, _request_timeout=10))
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        metadata = found["metadata"]
        return dict(metadata.get("labels") or {}), dict(metadata.get("annotations") or {})
