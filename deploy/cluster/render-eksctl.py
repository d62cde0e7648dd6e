#!/usr/bin/env python3
"""Turn the seed's cluster specification (cluster.yaml) into an eksctl ClusterConfig.

    python3 deploy/cluster/render-eksctl.py deploy/cluster/cluster.yaml > eksctl.yaml
    eksctl create cluster -f eksctl.yaml
    python3 deploy/cluster/render-eksctl.py deploy/cluster/cluster.yaml --plan   # the add-ons after that

Needs only Python 3 and PyYAML. How each part of the spec maps (docs/chart.md says why):

- name, availability zones -> metadata.name, metadata.region (from the zones), availabilityZones;
- version "1.28+" -> metadata.version "1.28" (or --kubernetes-version: EKS only creates supported versions);
- control-plane (3 x c5.xlarge): EKS runs the control plane itself across three zones, so those
  machines become a "system" managed node group of the same size, for the cluster add-ons;
- worker-nodes -> the "workers" managed node group: desired count, min..max for the
  cluster-autoscaler (tagged for its auto-discovery); target-cpu has no eksctl field: the
  cluster-autoscaler scales on unschedulable pods, and its nearest knob,
  --scale-down-utilization-threshold, gets the target (in --plan);
- storage (gp3, 100Gi, 3000 IOPS) -> every node group's root volume;
- networking and addons -> EKS add-ons where EKS has them (vpc-cni, coredns, kube-proxy,
  aws-ebs-csi-driver, metrics-server), IAM roles for the controllers' service accounts (IRSA),
  and --plan's Helm commands for the rest (Calico in policy mode, Istio with its CNI agent,
  ingress-nginx, cluster-autoscaler, aws-load-balancer-controller, external-dns).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

EKS_ADDONS = ("vpc-cni", "coredns", "kube-proxy", "aws-ebs-csi-driver", "metrics-server")
# Spec add-on -> the IRSA service account eksctl makes for it (namespace, name, eksctl well-known policy).
IRSA = {
    "cluster-autoscaler": ("kube-system", "cluster-autoscaler", "autoScaler"),
    "aws-load-balancer-controller": ("kube-system", "aws-load-balancer-controller", "awsLoadBalancerController"),
    "external-dns": ("kube-system", "external-dns", "externalDNS"),
}


class SpecError(ValueError):
    """cluster.yaml says something that cannot become a cluster."""


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict) or not isinstance(document.get("cluster"), dict):
        raise SpecError(f"{path}: expected a mapping with a `cluster:` key")
    return document["cluster"]


def region_of(zones: list[str]) -> str:
    regions = {re.sub(r"[a-z]$", "", zone) for zone in zones}
    if len(regions) != 1:
        raise SpecError(f"availability-zones span several regions: {sorted(regions)}")
    return regions.pop()


def minimum_version(text: str) -> str:
    match = re.fullmatch(r"(1\.\d+)\+?", str(text))
    if match is None:
        raise SpecError(f"version {text!r}: expected e.g. 1.28 or 1.28+")
    return match.group(1)


def gibibytes(size: str) -> int:
    match = re.fullmatch(r"([1-9]\d*)Gi", str(size))
    if match is None:
        raise SpecError(f"storage size {size!r}: expected e.g. 100Gi")
    return int(match.group(1))


def percent(text: str) -> int:
    match = re.fullmatch(r"(\d{1,3})%", str(text))
    if match is None or not 1 <= int(match.group(1)) <= 100:
        raise SpecError(f"target-cpu {text!r}: expected e.g. 70%")
    return int(match.group(1))


def render(spec: dict[str, Any], kubernetes_version: str | None = None) -> dict[str, Any]:
    """The eksctl.io/v1alpha5 ClusterConfig for the spec."""
    name = spec["name"]
    nodes = spec["nodes"]
    control, workers, storage = nodes["control-plane"], nodes["worker-nodes"], nodes["storage"]
    zones = list(control["availability-zones"])
    scaling = workers["auto-scaling"]
    if not scaling["min"] <= workers["count"] <= scaling["max"]:
        raise SpecError(f"worker count {workers['count']} is outside auto-scaling {scaling['min']}..{scaling['max']}")
    volume = {
        "volumeType": storage["type"],
        "volumeSize": gibibytes(storage["size"]),
        "volumeIOPS": int(storage["iops"]),
        "volumeEncrypted": True,
    }
    wanted = [addon for addon in EKS_ADDONS if addon != "metrics-server" or "metrics-server" in spec["addons"]]
    addons: list[dict[str, Any]] = [{"name": addon} for addon in wanted]
    for addon in addons:
        if addon["name"] == "aws-ebs-csi-driver":
            addon["wellKnownPolicies"] = {"ebsCSIController": True}
        if addon["name"] == "vpc-cni":
            # Calico enforces NetworkPolicy on top of the VPC CNI (policy-only mode, see --plan).
            addon["configurationValues"] = '{"enableNetworkPolicy": "false"}'
    service_accounts = [
        {
            "metadata": {"name": account, "namespace": namespace},
            "wellKnownPolicies": {policy: True},
        }
        for addon, (namespace, account, policy) in IRSA.items()
        if addon in spec["addons"]
    ]
    return {
        "apiVersion": "eksctl.io/v1alpha5",
        "kind": "ClusterConfig",
        "metadata": {
            "name": name,
            "region": region_of(zones),
            "version": kubernetes_version or minimum_version(spec["version"]),
            "tags": {"app.kubernetes.io/part-of": "pweza-core"},
        },
        "availabilityZones": list(zones),
        "iam": {"withOIDC": True, "serviceAccounts": service_accounts},
        "addons": addons,
        "managedNodeGroups": [
            {
                "name": "system",
                "instanceType": control["instance-type"],
                "desiredCapacity": control["count"],
                "minSize": control["count"],
                "maxSize": control["count"],
                "labels": {"pweza.ai/node-role": "system"},
                "availabilityZones": list(zones),
                "privateNetworking": True,
                **volume,
            },
            {
                "name": "workers",
                "instanceType": workers["instance-type"],
                "desiredCapacity": workers["count"],
                "minSize": scaling["min"],
                "maxSize": scaling["max"],
                "labels": {"pweza.ai/node-role": "worker"},
                "propagateASGTags": True,
                "tags": {
                    "k8s.io/cluster-autoscaler/enabled": "true",
                    f"k8s.io/cluster-autoscaler/{name}": "owned",
                    "pweza.ai/target-cpu": str(percent(scaling["target-cpu"])),
                },
                "availabilityZones": list(zones),
                "privateNetworking": True,
                **volume,
            },
        ],
    }


def plan(spec: dict[str, Any]) -> list[str]:
    """Helm commands for what eksctl does not install, in order."""
    name = spec["name"]
    region = region_of(spec["nodes"]["control-plane"]["availability-zones"])
    target = percent(spec["nodes"]["worker-nodes"]["auto-scaling"]["target-cpu"]) / 100
    networking = spec["networking"]
    steps = []
    if networking["cni"] == "calico":
        steps.append(
            "helm install calico projectcalico/tigera-operator -n tigera-operator --create-namespace "
            "--set installation.kubernetesProvider=EKS --set installation.cni.type=AmazonVPC"
        )
    if networking["service-mesh"] == "istio":
        steps += [
            "helm install istio-base istio/base -n istio-system --create-namespace",
            "helm install istio-cni istio/cni -n istio-system --set profile=default",
            "helm install istiod istio/istiod -n istio-system --set pilot.cni.enabled=true --wait",
            "kubectl label namespace istio-system name=istio-system --overwrite",
        ]
    if "aws-load-balancer-controller" in spec["addons"]:
        steps.append(
            "helm install aws-load-balancer-controller eks/aws-load-balancer-controller -n kube-system "
            f"--set clusterName={name} --set serviceAccount.create=false "
            "--set serviceAccount.name=aws-load-balancer-controller"
        )
    if networking["ingress"] == "nginx-ingress":
        annotation = "controller.service.annotations.service\\.beta\\.kubernetes\\.io"
        steps.append(
            "helm install ingress-nginx ingress-nginx/ingress-nginx -n ingress-nginx --create-namespace "
            f"--set {annotation}/aws-load-balancer-type=external "
            f"--set {annotation}/aws-load-balancer-scheme=internet-facing"
        )
    if "cluster-autoscaler" in spec["addons"]:
        steps.append(
            "helm install cluster-autoscaler autoscaler/cluster-autoscaler -n kube-system "
            f"--set autoDiscovery.clusterName={name} --set awsRegion={region} "
            "--set rbac.serviceAccount.create=false --set rbac.serviceAccount.name=cluster-autoscaler "
            f"--set extraArgs.scale-down-utilization-threshold={target:.2f}"
        )
    if "external-dns" in spec["addons"]:
        steps.append(
            "helm install external-dns external-dns/external-dns -n kube-system "
            "--set provider.name=aws --set serviceAccount.create=false --set serviceAccount.name=external-dns"
        )
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("spec", type=Path, nargs="?", default=Path(__file__).with_name("cluster.yaml"))
    parser.add_argument("--kubernetes-version", help="EKS version to create (default: the spec's minimum)")
    parser.add_argument("--plan", action="store_true", help="print the add-on installs that follow eksctl")
    args = parser.parse_args(argv)
    try:
        spec = load(args.spec)
        if args.plan:
            print("\n".join(plan(spec)))
        else:
            sys.stdout.write(yaml.safe_dump(render(spec, args.kubernetes_version), sort_keys=False))
    except (SpecError, KeyError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
