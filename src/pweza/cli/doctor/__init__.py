"""`pweza doctor`: does the cluster of the current kubeconfig have what the Helm chart needs?

The checks follow the chart's values (its values.yaml, then each ``--values`` file, merged as
Helm merges them): the Kubernetes version, the APIs of the integrations those values switch on
(metrics.k8s.io, custom.metrics.k8s.io, monitoring.coreos.com, networking.istio.io,
database.arangodb.com, backup.arangodb.com, postgresql.cnpg.io, autoscaling.k8s.io,
cert-manager.io), the ingress class, what the chosen database.mode needs (the CloudNativePG
kinds, the external database's Secret and key, the bundled PostgreSQL's StorageClass), a
default StorageClass and the CSI driver of the chart's own class, and the labels of the chart's
namespaces. Each failed check says how to fix it; an enabled ArangoDB, which the manager does
not use yet, is a warning.

One module per group of checks (``apis``, ``storage``, ``database``, ``ingress``,
``namespaces``), each a function of the merged values (``values``) and the cluster's read-only
calls (``cluster``) returning ``Check`` results (``results``); ``running`` runs them in the
report's order and ``report`` prints them.
"""

from pweza.cli.doctor.apis import MIN_KUBERNETES
from pweza.cli.doctor.cluster import Cluster
from pweza.cli.doctor.database import check_database
from pweza.cli.doctor.namespaces import expected_namespace_labels
from pweza.cli.doctor.report import print_report
from pweza.cli.doctor.results import Check, Status
from pweza.cli.doctor.running import run_checks
from pweza.cli.doctor.values import BUILT_IN_DEFAULTS, load_values, merge_values

__all__ = [
    "BUILT_IN_DEFAULTS",
    "MIN_KUBERNETES",
    "Check",
    "Cluster",
    "Status",
    "check_database",
    "expected_namespace_labels",
    "load_values",
    "merge_values",
    "print_report",
    "run_checks",
]
