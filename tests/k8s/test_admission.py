"""kubectl refuses what `pweza apply` refuses: the operator's admission webhook on a real apiserver.

The operator runs as a local process serving the webhook on 127.0.0.1 with a certificate made
here; a ValidatingWebhookConfiguration (limited to the test's namespace, since the control plane
is shared by the session) points the API server at it by URL. Each bad manifest is given both to
`kubectl apply` and to `pweza apply` (which refuses it before reaching any manager), and kubectl
must print the very message `pweza apply` does.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pweza.testing.controlplane import ControlPlane
from pweza.testing.platform import free_port
from tests.k8s.conftest import Operator, eventually, get_json
from tests.k8s.test_operator import TEMPLATE, pool_yaml, ready_replicas

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(600)]

GOOD = """apiVersion: pweza.ai/v1
kind: Workflow
metadata: {name: report}
spec:
  timeout: 10m
  steps:
    - name: fetch
      agent: {pool: workers}
    - name: summarize
      agent: {pool: workers}
      depends: [fetch]
      when: "size(steps.fetch.output) > 0"
"""
# GOOD with a dependency cycle added: no schema can see it, only the validation `pweza apply` runs.
CYCLE_UPDATE = GOOD.replace(
    "      agent: {pool: workers}\n    - name: summarize",
    "      agent: {pool: workers}\n      depends: [summarize]\n    - name: summarize",
    1,
)

BAD: dict[str, str] = {
    "duration": GOOD.replace("timeout: 10m", "timeout: forever"),
    "unknown-depends": GOOD.replace("depends: [fetch]", "depends: [fetch, nope]"),
    "cycle": CYCLE_UPDATE.replace("name: report", "name: loop"),
    "cel": GOOD.replace('"size(steps.fetch.output) > 0"', '"steps.fetch.output >"'),
    "duplicate-steps": """apiVersion: pweza.ai/v1
kind: Workflow
metadata: {name: twice}
spec:
  steps:
    - {name: fetch, agent: {pool: workers}}
    - {name: fetch, agent: {pool: workers}}
""",
    "template-duration": """apiVersion: pweza.ai/v1
kind: AgentTemplate
metadata: {name: slow}
spec:
  runtime: {kind: python, handler: "pweza.testing.handlers:echo"}
  timeout: 5 minutes
""",
}


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl CLI is needed to make the webhook's test certificate")
    subprocess.run([openssl, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Serving:
    ca: Path
    cert: Path
    key: Path


def make_certificate(directory: Path) -> Serving:
    """A throwaway CA and a serving certificate for 127.0.0.1 signed by it."""
    directory.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=webhook-test-ca",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign", cwd=directory)  # fmt: skip
    _openssl("req", "-new", *ec, "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=127.0.0.1", cwd=directory)
    (directory / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", "2", "-days", "1",
             "-extfile", "ext.cnf", "-out", "tls.crt", cwd=directory)  # fmt: skip
    return Serving(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")


def webhook_ready(port: int, ca: Path) -> bool:
    """What a test (or a person) waits on: the webhook answers over TLS with the expected CA."""
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=context, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def webhook_configuration(name: str, namespace: str, port: int, ca: Path) -> dict[str, object]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "validate.pweza.ai",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{port}/validate",
                    "caBundle": base64.b64encode(ca.read_bytes()).decode(),
                },
                "rules": [
                    {
                        "apiGroups": ["pweza.ai"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["agenttemplates", "agentpools", "workflows", "toolservers"],
                        "scope": "Namespaced",
                    }
                ],
                # The session's other tests share this apiserver: only this test's namespace.
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 5,
            }
        ],
    }


@dataclass
class Admission:
    cp: ControlPlane
    namespace: str
    operator: Operator
    workdir: Path

    def file(self, name: str, text: str) -> Path:
        path = self.workdir / f"{name}.yaml"
        path.write_text(text)
        return path

    def kubectl_apply(self, path: Path) -> subprocess.CompletedProcess[str]:
        return self.cp.kubectl("apply", "-n", self.namespace, "-f", str(path), check=False)


def serve_webhook(
    cp: ControlPlane, namespace: str, start_operator: Callable[..., Operator], workdir: Path, identity: str
) -> Iterator[Admission]:
    """An operator serving the webhook, registered with the apiserver; unregistered afterwards."""
    serving = make_certificate(workdir / "pki")
    port = free_port()
    operator = start_operator(
        identity, "--webhook-cert-file", str(serving.cert), "--webhook-key-file", str(serving.key),
        "--webhook-port", str(port),
    )  # fmt: skip
    eventually(lambda: webhook_ready(port, serving.ca) or operator.process.poll() is not None, 60, "the webhook")
    assert operator.process.poll() is None, operator.text()
    name = f"pweza-test-{namespace}"
    config = workdir / "webhook.json"
    config.write_text(json.dumps(webhook_configuration(name, namespace, port, serving.ca)))
    cp.kubectl("apply", "-f", str(config))
    state = Admission(cp, namespace, operator, workdir)
    # The apiserver picks the configuration up from its informer a moment later.
    probe = state.file("probe", BAD["cycle"].replace("name: loop", "name: probe"))
    eventually(
        lambda: cp.kubectl("create", "--dry-run=server", "-n", namespace, "-f", str(probe), check=False).returncode,
        30,
        "the apiserver to call the webhook",
    )
    try:
        yield state
    finally:
        cp.kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found", check=False)


@pytest.fixture
def admission(
    control_plane: ControlPlane, namespace: str, start_operator: Callable[..., Operator], tmp_path: Path
) -> Iterator[Admission]:
    yield from serve_webhook(control_plane, namespace, start_operator, tmp_path, "op-webhook")


def lease_holder(cp: ControlPlane, namespace: str) -> str | None:
    lease = get_json(cp, "lease", "pweza-operator", "-n", namespace) or {}
    return (lease.get("spec") or {}).get("holderIdentity")


@pytest.fixture
def standby(
    control_plane: ControlPlane, namespace: str, start_operator: Callable[..., Operator], tmp_path: Path
) -> Iterator[Admission]:
    """The webhook served by a replica that does not hold the Lease: another one leads."""
    start_operator("op-leader")  # no webhook of its own
    eventually(lambda: lease_holder(control_plane, namespace) == "op-leader", 30, "op-leader to lead")
    yield from serve_webhook(control_plane, namespace, start_operator, tmp_path, "op-standby")


def pweza_apply_message(path: Path) -> str:
    """What `pweza apply -f path` prints after the file's name (no manager listens: it refuses first)."""
    env = {**os.environ, "PWEZA_URL": f"http://127.0.0.1:{free_port()}", "PWEZA_TOKEN": "pwz_unused", "COLUMNS": "1000"}
    result = subprocess.run(
        [sys.executable, "-m", "pweza", "apply", "-f", str(path)],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    text = " ".join(result.stderr.split())
    prefix = f"error: {path}: "
    assert text.startswith(prefix), text
    return text.removeprefix(prefix)


@pytest.mark.parametrize("case", sorted(BAD))
def test_kubectl_refuses_with_the_message_pweza_apply_prints(admission: Admission, case: str) -> None:
    path = admission.file(case, BAD[case])
    expected = pweza_apply_message(path)
    refused = admission.kubectl_apply(path)
    assert refused.returncode != 0, refused.stdout
    stderr = " ".join(refused.stderr.split())
    assert f'admission webhook "validate.pweza.ai" denied the request: {expected}' in stderr, stderr
    kind = "workflow" if "kind: Workflow" in BAD[case] else "agenttemplate"
    name = BAD[case].split("metadata: {name: ", 1)[1].split("}", 1)[0]
    assert admission.cp.kubectl("get", kind, name, "-n", admission.namespace, check=False).returncode != 0


def test_a_good_workflow_is_admitted_and_an_update_that_adds_a_cycle_is_refused(admission: Admission) -> None:
    good = admission.file("good", GOOD)
    created = admission.kubectl_apply(good)
    assert created.returncode == 0, created.stderr
    # A change that leaves the spec alone (labels, kopf's annotations, finalizers) is admitted.
    labelled = admission.cp.kubectl("label", "workflow", "report", "-n", admission.namespace, "team=a", check=False)
    assert labelled.returncode == 0, labelled.stderr

    cyclic = admission.file("cycle-update", CYCLE_UPDATE)
    expected = pweza_apply_message(cyclic)
    assert "dependency cycle" in expected, expected
    refused = admission.kubectl_apply(cyclic)
    assert refused.returncode != 0, refused.stdout
    assert expected in " ".join(refused.stderr.split()), refused.stderr
    stored = json.loads(
        admission.cp.kubectl("get", "workflow", "report", "-n", admission.namespace, "-o", "json").stdout
    )
    assert stored["spec"]["steps"][0].get("depends", []) == [], "the refused update changed nothing"
    assert admission.operator.process.poll() is None, admission.operator.text()


def test_a_standby_replica_answers_as_the_leader_would(standby: Admission) -> None:
    path = standby.file("cycle", BAD["cycle"])
    refused = standby.kubectl_apply(path)
    assert refused.returncode != 0, refused.stdout
    assert pweza_apply_message(path) in " ".join(refused.stderr.split()), refused.stderr
    assert standby.kubectl_apply(standby.file("good", GOOD)).returncode == 0
    assert lease_holder(standby.cp, standby.namespace) == "op-leader"
    assert "standing by" in standby.operator.text() and '"event": "leader"' not in standby.operator.text()


def test_the_operator_reconciles_through_its_own_webhook(admission: Admission) -> None:
    """failurePolicy Fail does not block the operator: kopf's patches and the spec.replicas it sets
    for a pool under an HPA go through the webhook it serves itself."""
    objects = admission.file("pool", TEMPLATE.format(name="tmpl", mode="t") + "---" + pool_yaml(low=1, high=3))
    applied = admission.kubectl_apply(objects)
    assert applied.returncode == 0, applied.stderr
    cp, namespace = admission.cp, admission.namespace
    eventually(lambda: ready_replicas(cp, namespace, "workers") == 1, 60, "the pool reconciled")
    assert get_json(cp, "agentpool", "workers", "-n", namespace)["spec"]["replicas"] == 1  # set by the operator
    assert get_json(cp, "hpa", "workers-agents", "-n", namespace) is not None
    assert "denied the request" not in admission.operator.text()
