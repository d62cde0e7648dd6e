"""`helm install` of the chart on a real node, then what a user does with it: apply the example's
objects with kubectl, run a workflow through the manager's Service, lose the manager's pod mid-run,
upgrade, roll back, `helm test`."""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any

import httpx
import pytest

from pweza.testing.images import CORE_IMAGE
from tests.node.conftest import (
    AGENTS,
    CHART,
    DATA,
    MANAGER,
    RELEASE,
    SYSTEM,
    Node,
    Release,
    all_ready,
    eventually,
)

# A release takes minutes to become Ready on two cores; its setup counts in the first test.
pytestmark = [pytest.mark.node, pytest.mark.timeout(1800)]


def start_run(release: Release, workflow: str, inputs: dict[str, Any] | None = None) -> str:
    with release.client() as client:
        response = client.post(f"/api/v1/workflows/{workflow}/runs", params={"namespace": AGENTS},
                               json={"inputs": inputs or {}})  # fmt: skip
        assert response.status_code in (200, 201, 202), response.text
        return str(response.json()["id"])


def start_run_when_served(release: Release, workflow: str, timeout: float = 120) -> str:
    """Start a run once the manager's Service routes to a Ready pod again (after a rollout,
    kube-proxy follows the new endpoints a moment after `helm --wait` returns)."""

    def attempt() -> str | None:
        try:
            return start_run(release, workflow)
        except httpx.TransportError:
            return None

    run_id: str = eventually(attempt, timeout, "the manager's Service to take a run", interval=2)
    return run_id


def get_run(release: Release, run_id: str) -> dict[str, Any] | None:
    try:
        with release.client() as client:
            response = client.get(f"/api/v1/runs/{run_id}")
    except (OSError, httpx.TransportError):
        return None  # the manager's pod is being replaced
    return dict(response.json()) if response.status_code == 200 else None


def wait_run(release: Release, run_id: str, timeout: float = 300) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        run = get_run(release, run_id)
        return run if run and run["state"] not in ("pending", "running") else None

    result: dict[str, Any] = eventually(finished, timeout, f"run {run_id} to finish", interval=1)
    return result


def test_every_pod_of_the_chart_is_ready_under_restricted_pod_security(release: Release) -> None:
    node = release.node
    for namespace in (SYSTEM, AGENTS):
        labels = node.get("namespace", namespace)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted", namespace
    for namespace in (SYSTEM, DATA):
        assert all_ready(node, namespace), node.describe_failures(namespace)
    deployments = {d["metadata"]["name"]: d for d in node.get("deployments", "-n", SYSTEM)["items"]}
    for name in (MANAGER, "pweza-core-operator"):
        assert deployments[name]["status"].get("readyReplicas") == deployments[name]["spec"]["replicas"], name


def test_a_run_through_the_manager_service_succeeds_with_the_report(triage: Release) -> None:
    run = wait_run(triage, start_run(triage, "support-triage"))
    assert run["state"] == "succeeded", run.get("error")
    assert run["outputs"]["counts"] == {"billing": 4, "technical": 3, "account": 4, "other": 1}
    report: str = run["outputs"]["report"]
    assert report.startswith("# Support triage report")
    assert "paged Amina Odhiambo (sre-primary" in report
    for ticket in ("T-1002", "T-1004", "T-1007", "T-1012"):
        assert f"**{ticket}**" in report


def test_the_manager_pod_force_deleted_mid_run_loses_nothing(triage: Release) -> None:
    node = triage.node
    run_id = start_run(triage, "support-triage")
    eventually(lambda: (r := get_run(triage, run_id)) and r["state"] == "running", 60, "the run to start")
    (pod,) = [p["metadata"]["name"] for p in node.pods(SYSTEM, f"app={MANAGER}")]
    node.kubectl("delete", "pod", pod, "-n", SYSTEM, "--force", "--grace-period=0")
    eventually(
        lambda: all_ready(node, SYSTEM) and pod not in {p["metadata"]["name"] for p in node.pods(SYSTEM)},
        300,
        "a new manager pod Ready",
        interval=2,
    )
    run = wait_run(triage, run_id)
    assert run["state"] == "succeeded", run.get("error")
    assert run["outputs"]["counts"] == {"billing": 4, "technical": 3, "account": 4, "other": 1}
    with triage.client() as client:
        runs = client.get("/api/v1/runs", params={"limit": 100}).json()["items"]
    assert run_id in {r["id"] for r in runs}


def _container_processes(node: Node, namespace: str, selector: str | None = None) -> list[dict[str, str]]:
    """The real processes of the pods' containers, read from /proc on the node (no shell in
    the image to ask): their uid and whether their root filesystem is mounted read-only."""
    found = []
    for pod in node.pods(namespace, selector):
        if pod["status"].get("phase") != "Running":
            continue
        for status in pod["status"].get("containerStatuses", []):
            container_id = status["containerID"].split("://", 1)[1]
            info = node.cluster.container_process(container_id)
            found.append({"pod": pod["metadata"]["name"], "container": status["name"], **info})
    return found


def test_containers_run_as_uid_and_gid_1000_with_a_read_only_root(triage: Release) -> None:
    node = triage.node
    processes = _container_processes(node, SYSTEM)
    processes += _container_processes(node, AGENTS, "pweza.ai/pool=classifiers")
    assert {p["container"] for p in processes} >= {"manager", "operator", "agent"}, processes
    for process in processes:
        assert (process["uid"], process["gid"]) == ("1000", "1000"), process
        assert process["root"] == "ro", process


def running_images(node: Node) -> set[str]:
    """The pweza-core images of the system namespace's pods that run and are not going away."""
    return {
        c["image"]
        for p in node.pods(SYSTEM)
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
        for c in p["spec"]["containers"]
        if "pweza-core:" in c["image"]
    }


def _roll_back_to(node: Node, revision: int) -> None:
    result = node.helm("rollback", RELEASE, str(revision), "-n", SYSTEM, "--wait", "--timeout", "10m")
    assert result.returncode == 0, result.stderr + node.describe_failures(SYSTEM)


def test_an_upgrade_to_a_new_image_tag_rolls_the_pods_with_no_failed_run(triage: Release) -> None:
    node = triage.node
    # The same image under a new tag, as a release pipeline would push it.
    node.cluster.tag_image(CORE_IMAGE, f"{CORE_IMAGE}-next")
    before = {p["metadata"]["name"] for p in node.pods(SYSTEM)}
    revision = json.loads(node.helm("status", RELEASE, "-n", SYSTEM, "-o", "json").stdout)["version"]
    runs: list[str] = []
    stop = threading.Event()

    def keep_starting_runs() -> None:
        while not stop.is_set() and len(runs) < 6:
            # The manager's Service may have no Ready pod for a moment.
            with contextlib.suppress(AssertionError, OSError, httpx.TransportError):
                runs.append(start_run(triage, "support-triage"))
            stop.wait(5)

    starter = threading.Thread(target=keep_starting_runs, daemon=True)
    starter.start()
    try:
        upgrade = node.helm(
            "upgrade", RELEASE, str(CHART), "-n", SYSTEM, "--reuse-values",
            "--set", f"image.tag={CORE_IMAGE.rsplit(':', 1)[1]}-next", "--wait", "--timeout", "10m",
        )  # fmt: skip
    finally:
        stop.set()
        starter.join(30)
    assert upgrade.returncode == 0, upgrade.stderr + node.describe_failures(SYSTEM)
    eventually(lambda: running_images(node) == {f"{CORE_IMAGE}-next"}, 120, "only the new image's pods to run")
    eventually(lambda: not before & {p["metadata"]["name"] for p in node.pods(SYSTEM)}, 120, "every pod replaced")
    assert runs, "no run could be started during the upgrade"
    finished = [wait_run(triage, run_id) for run_id in runs]
    assert [r["state"] for r in finished] == ["succeeded"] * len(runs)

    _roll_back_to(node, revision)
    eventually(lambda: running_images(node) == {CORE_IMAGE}, 120, "only the old image's pods to run")
    assert wait_run(triage, start_run_when_served(triage, "support-triage"))["state"] == "succeeded"


def test_helm_test_pods_run_for_real_and_pass(triage: Release) -> None:
    node = triage.node
    # (No --logs: helm fetches logs by hook name, and the chart's test hooks are Jobs and a ConfigMap.)
    result = node.helm("test", RELEASE, "-n", SYSTEM, "--timeout", "10m")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr + node.describe_failures(SYSTEM)
    assert "Phase:          Succeeded" in result.stdout
    assert "Phase:          Failed" not in result.stdout
