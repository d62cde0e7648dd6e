"""deploy/cluster/cluster.yaml is the seed's cluster specification, and render-eksctl.py makes an
eksctl ClusterConfig of it whose shape eksctl accepts (the fields below are eksctl's v1alpha5
ClusterConfig fields; unknown ones fail the check, as eksctl's strict schema would)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "deploy" / "cluster"

pytestmark = pytest.mark.timeout(600)

# The seed's spec (shared/seed/kubernetes-infrastructure.md, section 1), as it wrote it.
SEED = yaml.safe_load("""
cluster:
  name: pweza-core-production
  version: "1.28+"
  nodes:
    control-plane:
      count: 3
      instance-type: c5.xlarge
      availability-zones: ["us-east-1a", "us-east-1b", "us-east-1c"]
    worker-nodes:
      count: 6
      instance-type: c5.2xlarge
      auto-scaling:
        min: 3
        max: 20
        target-cpu: 70%
    storage:
      type: gp3
      size: 100Gi
      iops: 3000
  networking:
    cni: calico
    service-mesh: istio
    ingress: nginx-ingress
  addons:
    - metrics-server
    - cluster-autoscaler
    - aws-load-balancer-controller
    - external-dns
""")


def _strict(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_WELL_KNOWN = _strict(
    {
        name: {"type": "boolean"}
        for name in (
            "imageBuilder",
            "autoScaler",
            "awsLoadBalancerController",
            "externalDNS",
            "certManager",
            "ebsCSIController",
            "efsCSIController",
        )
    }
)
_NODE_GROUP = _strict(
    {
        "name": {"type": "string", "pattern": "^[a-zA-Z][-a-zA-Z0-9]*$"},
        "instanceType": {"type": "string"},
        "desiredCapacity": {"type": "integer", "minimum": 0},
        "minSize": {"type": "integer", "minimum": 0},
        "maxSize": {"type": "integer", "minimum": 1},
        "availabilityZones": {"type": "array", "items": {"type": "string"}},
        "privateNetworking": {"type": "boolean"},
        "volumeType": {"enum": ["gp2", "gp3", "io1", "io2", "sc1", "st1"]},
        "volumeSize": {"type": "integer"},
        "volumeIOPS": {"type": "integer"},
        "volumeEncrypted": {"type": "boolean"},
        "labels": _STRINGS,
        "tags": _STRINGS,
        "propagateASGTags": {"type": "boolean"},
    },
    ("name",),
)
# A subset of eksctl's ClusterConfig (eksctl.io/v1alpha5) schema: the fields the renderer uses.
EKSCTL_SUBSET = _strict(
    {
        "apiVersion": {"const": "eksctl.io/v1alpha5"},
        "kind": {"const": "ClusterConfig"},
        "metadata": _strict(
            {
                "name": {"type": "string", "pattern": "^[a-zA-Z][-a-zA-Z0-9]{0,99}$"},
                "region": {"type": "string", "pattern": "^[a-z]{2}-[a-z]+-[0-9]$"},
                "version": {"type": "string", "pattern": "^1\\.[0-9]+$"},
                "tags": _STRINGS,
            },
            ("name", "region"),
        ),
        "availabilityZones": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "iam": _strict(
            {
                "withOIDC": {"type": "boolean"},
                "serviceAccounts": {
                    "type": "array",
                    "items": _strict(
                        {
                            "metadata": _strict({"name": {"type": "string"}, "namespace": {"type": "string"}}),
                            "wellKnownPolicies": _WELL_KNOWN,
                        }
                    ),
                },
            }
        ),
        "addons": {
            "type": "array",
            "items": _strict(
                {
                    "name": {"type": "string"},
                    "wellKnownPolicies": _WELL_KNOWN,
                    "configurationValues": {"type": "string"},
                },
                ("name",),
            ),
        },
        "managedNodeGroups": {"type": "array", "items": _NODE_GROUP},
    },
    ("apiVersion", "kind", "metadata"),
)


def renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_eksctl", CLUSTER / "render-eksctl.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cluster_yaml_is_the_seeds_specification() -> None:
    assert yaml.safe_load((CLUSTER / "cluster.yaml").read_text()) == SEED


def test_cluster_yaml_matches_its_schema() -> None:
    schema = json.loads((CLUSTER / "cluster.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load((CLUSTER / "cluster.yaml").read_text()), schema)
    broken = yaml.safe_load((CLUSTER / "cluster.yaml").read_text())
    broken["cluster"]["nodes"]["worker-nodes"]["auto-scaling"]["target-cpu"] = "seventy"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_render_eksctl_makes_a_cluster_config_with_the_seeds_numbers() -> None:
    config = renderer().render(SEED["cluster"])
    jsonschema.validate(config, EKSCTL_SUBSET)
    assert config["metadata"] == {
        "name": "pweza-core-production",
        "region": "us-east-1",
        "version": "1.28",
        "tags": {"app.kubernetes.io/part-of": "pweza-core"},
    }
    groups = {group["name"]: group for group in config["managedNodeGroups"]}
    system, workers = groups["system"], groups["workers"]
    assert (system["instanceType"], system["desiredCapacity"], system["minSize"], system["maxSize"]) == (
        "c5.xlarge",
        3,
        3,
        3,
    )
    assert (workers["instanceType"], workers["desiredCapacity"], workers["minSize"], workers["maxSize"]) == (
        "c5.2xlarge",
        6,
        3,
        20,
    )
    for group in groups.values():
        assert group["availabilityZones"] == ["us-east-1a", "us-east-1b", "us-east-1c"]
        assert (group["volumeType"], group["volumeSize"], group["volumeIOPS"]) == ("gp3", 100, 3000)
    assert workers["tags"]["k8s.io/cluster-autoscaler/pweza-core-production"] == "owned"
    assert workers["tags"]["pweza.ai/target-cpu"] == "70"
    assert {addon["name"] for addon in config["addons"]} == {
        "vpc-cni",
        "coredns",
        "kube-proxy",
        "aws-ebs-csi-driver",
        "metrics-server",
    }
    accounts = {account["metadata"]["name"] for account in config["iam"]["serviceAccounts"]}
    assert accounts == {"cluster-autoscaler", "aws-load-balancer-controller", "external-dns"}


def test_the_plan_installs_what_eksctl_does_not() -> None:
    steps = "\n".join(renderer().plan(SEED["cluster"]))
    for piece in ("tigera-operator", "istio/cni", "istiod", "ingress-nginx", "cluster-autoscaler",
                  "aws-load-balancer-controller", "external-dns", "scale-down-utilization-threshold=0.70"):  # fmt: skip
        assert piece in steps


def test_the_script_runs_standalone_and_refuses_a_bad_spec(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(CLUSTER / "render-eksctl.py"), str(CLUSTER / "cluster.yaml"), "--kubernetes-version", "1.31"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    jsonschema.validate(config, EKSCTL_SUBSET)
    assert config["metadata"]["version"] == "1.31"
    bad = yaml.safe_load((CLUSTER / "cluster.yaml").read_text())
    bad["cluster"]["nodes"]["worker-nodes"]["count"] = 30
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    refused = subprocess.run(
        [sys.executable, str(CLUSTER / "render-eksctl.py"), str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode == 1
    assert "worker count 30 is outside auto-scaling 3..20" in refused.stderr
