"""The operator's ModelConfig reconcile against a real manager process (the Kubernetes side a
stand-in holding the resources): mirrored into the manager, the manager's status copied back."""

from __future__ import annotations

from typing import Any

import pytest

from pweza.operator import resources
from pweza.operator.handlers import Context
from pweza.operator.model_configs import reconcile_model_config
from pweza.operator.syncing import ManagerSync
from pweza.testing.platform import Platform
from tests.model_providers import chat_reply, provider

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class StandInKube:
    """The reads and status writes the reconcile makes, on a dict of resources."""

    def __init__(self, *bodies: dict[str, Any]) -> None:
        self.objects = {f"{b['kind']}/{b['metadata']['namespace']}/{b['metadata']['name']}": b for b in bodies}
        self.statuses: list[dict[str, Any]] = []

    async def get(self, api: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        return self.objects.get(f"{kind}/{namespace}/{name}")

    async def patch_status(self, api: str, kind: str, name: str, namespace: str, status: dict[str, Any]) -> None:
        self.statuses.append(status)


def resource(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pweza.ai/v1",
        "kind": "ModelConfig",
        "metadata": {"name": name, "namespace": "default", "generation": 3, "uid": "u-1"},
        "spec": spec,
    }


async def test_a_model_config_is_registered_and_its_status_comes_back_from_the_manager(platform: Platform) -> None:
    manager = ManagerSync(platform.url, platform.admin_token)
    try:
        with provider(lambda _n, _b: chat_reply("hi"), models=["m-1"]) as up:
            kube = StandInKube(resource("main", baseUrl=up.base_url, model="m-1"), resource("bad", model="m"))
            ctx = Context(kube=kube, config=resources.OperatorConfig(), manager=manager)  # type: ignore[arg-type]
            await reconcile_model_config(ctx, "default", "main")
            await reconcile_model_config(ctx, "default", "bad")
    finally:
        await manager.close()
    registered, invalid = kube.statuses
    assert (registered["reachable"], registered["models"], registered["observedGeneration"]) == (True, ["m-1"], 3)
    [ready] = registered["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Registered")
    [refused] = invalid["conditions"]
    assert (refused["status"], refused["reason"]) == ("False", "InvalidSpec") and "baseUrl" in refused["message"]
    with platform.client() as http:
        stored = http.get("/api/v1/modelconfigs/main").json()
        assert stored["spec"]["baseUrl"] == up.base_url
        assert http.get("/api/v1/modelconfigs/bad").status_code == 404
