"""What the operator makes of ModelConfigs: a template's models found by modelRef and fallbacks,
and their Secret-backed keys handed to the agent pods as the variables the agent reads."""

from __future__ import annotations

from typing import Any

from pweza.domain.manifests import AgentPool, AgentTemplate
from pweza.operator import resources
from pweza.operator.handlers import Context
from pweza.operator.model_configs import key_variables, models_of


class StandInKube:
    """Only the reads models_of makes, from a dict of resources."""

    def __init__(self, objects: dict[str, dict[str, Any]]) -> None:
        self.objects = objects

    async def get(self, api: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        return self.objects.get(f"{kind}/{namespace}/{name}")


def model_config(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pweza.ai/v1",
        "kind": "ModelConfig",
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"baseUrl": "https://api.example.com/v1", "model": "m", **spec},
    }


TEMPLATE = AgentTemplate.model_validate(
    {
        "apiVersion": "pweza.ai/v1",
        "kind": "AgentTemplate",
        "metadata": {"name": "thinker", "namespace": "team"},
        "spec": {"runtime": {"kind": "agent", "modelRef": "main"}},
    }
)
POOL = AgentPool.model_validate(
    {
        "apiVersion": "pweza.ai/v1",
        "kind": "AgentPool",
        "metadata": {"name": "thinkers", "namespace": "team"},
        "spec": {"templateRef": "thinker"},
    }
)


async def test_the_pods_get_each_secret_backed_key_of_the_templates_models() -> None:
    kube = StandInKube(
        {
            "ModelConfig/team/main": model_config(
                "main", fallbacks=["spare-model", "missing"], apiKey={"secretKeyRef": {"name": "openai", "key": "k"}}
            ),
            "ModelConfig/team/spare-model": model_config("spare-model", apiKey={"env": "SPARE_KEY"}),
            "ModelConfig/team/other": model_config("other", apiKey={"secretKeyRef": {"name": "x", "key": "y"}}),
        }
    )
    ctx = Context(kube=kube, config=resources.OperatorConfig(), manager=None)  # type: ignore[arg-type]
    models = await models_of(ctx, TEMPLATE, "team")
    assert [m["metadata"]["name"] for m in models] == ["main", "spare-model"]
    keys = key_variables(models)
    assert keys == [{"name": "PWEZA_MODEL_KEY_MAIN", "valueFrom": {"secretKeyRef": {"name": "openai", "key": "k"}}}]
    deployment = resources.deployment(POOL, TEMPLATE, 1, "uid-1", resources.OperatorConfig(), keys)
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert keys[0] in container["env"]
    assert all("value" not in entry for entry in container["env"] if entry["name"].startswith("PWEZA_MODEL_KEY_"))
