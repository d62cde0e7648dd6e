"""What an AgentPool should look like on the cluster: pure functions from the objects to manifests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pweza.domain.manifests import AgentPool, AgentTemplate, EnvVar, Resources

GROUP_VERSION = "pweza.ai/v1"
POOL_LABEL = "pweza.ai/pool"
MANAGED_BY = "pweza-operator"
TEMPLATE_GENERATION = "pweza.ai/template-generation"


DEFAULT_MANAGER_GRPC = "pweza-core-manager.pweza-core-system.svc:9090"
DEFAULT_AGENT_TOKEN_SECRET = "pweza-agent-token"
DEFAULT_IMAGE = "ghcr.io/pweza/pweza-core:0.1.0"


@dataclass(frozen=True, slots=True)
class OperatorConfig:
    manager_grpc: str = DEFAULT_MANAGER_GRPC
    agent_token_secret: str = DEFAULT_AGENT_TOKEN_SECRET
    agent_token_key: str = "token"
    default_image: str = DEFAULT_IMAGE
    field_manager: str = "pweza-operator"


def selector_labels(pool: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "pweza-agent", POOL_LABEL: pool}


def labels(pool: str) -> dict[str, str]:
    return {
        **selector_labels(pool),
        "app.kubernetes.io/instance": pool,
        "app.kubernetes.io/component": "agent",
        "app.kubernetes.io/part-of": "pweza-core",
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def selector_string(pool: str) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(selector_labels(pool).items()))


def deployment_name(pool: str) -> str:
    return f"{pool}-agents"


def service_account_name(pool: str) -> str:
    return f"{pool}-agent"


def owner_reference(pool_name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "AgentPool",
        "name": pool_name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(pool: AgentPool, name: str, uid: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": pool.metadata.namespace,
        "labels": labels(pool.metadata.name),
        "ownerReferences": [owner_reference(pool.metadata.name, uid)],
    }


def merged_resources(template: Resources | None, pool: Resources | None) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for source in (template, pool):
        if source is None:
            continue
        for part in ("requests", "limits"):
            values = getattr(source, part)
            if values:
                merged.setdefault(part, {}).update({key: str(value) for key, value in values.items()})
    return merged


def merged_environment(template: list[EnvVar], pool: list[EnvVar]) -> list[dict[str, str]]:
    by_name = {env.name: env.value for env in template}
    by_name.update({env.name: env.value for env in pool})
    return [{"name": name, "value": value} for name, value in by_name.items()]


def service_account(pool: AgentPool, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(pool, service_account_name(pool.metadata.name), uid),
        # Agents talk to the manager, never to the Kubernetes API.
        "automountServiceAccountToken": False,
    }


def deployment(
    pool: AgentPool,
    template: AgentTemplate,
    template_generation: int,
    uid: str,
    config: OperatorConfig,
    model_keys: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The pool's agents; `model_keys`: env entries with the Secret-backed keys of its models."""
    name = pool.metadata.name
    image = pool.spec.template.image or template.spec.image or config.default_image
    env: list[dict[str, Any]] = list(merged_environment(template.spec.environment, pool.spec.template.environment))
    env.append(
        {
            "name": "PWEZA_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": config.agent_token_secret, "key": config.agent_token_key}},
        }
    )
    env.extend(model_keys)
    container: dict[str, Any] = {
        "name": "agent",
        "image": image,
        "args": ["agent", "--pool", name, "--namespace", pool.metadata.namespace, "--manager", config.manager_grpc],
        "env": env,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    resources = merged_resources(template.spec.resources, pool.spec.template.resources)
    if resources:
        container["resources"] = resources
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(pool, deployment_name(name), uid),
        "spec": {
            "replicas": pool.spec.desired_replicas,
            "selector": {"matchLabels": selector_labels(name)},
            "template": {
                "metadata": {
                    "labels": labels(name),
                    # A changed template changes the pod template, so the Deployment rolls out.
                    "annotations": {TEMPLATE_GENERATION: str(template_generation)},
                },
                "spec": {
                    "serviceAccountName": service_account_name(name),
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 45,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 1000,
                        # Without it containerd gives the process gid 0 (root's group).
                        "runAsGroup": 1000,
                        "fsGroup": 2000,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                },
            },
        },
    }


def autoscaler(pool: AgentPool, uid: str) -> dict[str, Any] | None:
    """An HPA driving the AgentPool's scale subresource, or None when there is nothing to scale."""
    scaling = pool.spec.scaling
    if scaling.min_replicas == scaling.max_replicas:
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(pool, deployment_name(pool.metadata.name), uid),
        "spec": {
            "scaleTargetRef": {"apiVersion": GROUP_VERSION, "kind": "AgentPool", "name": pool.metadata.name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": scaling.target_utilization},
                    },
                }
            ],
        },
    }
