"""Operator benchmark: time for N AgentPools to be reconciled to Ready, and the operator's peak RSS (JSON).

Runs against the real control plane of `pweza.testing.controlplane` (kwok nodes, so pods
go Running without containers). All pools are applied at once with one `kubectl apply`;
the clock stops when every pool's Ready condition is True (its pods are Running and the
status says so).

    python benchmarks/operator_scale.py [--pools 1000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pweza.testing.controlplane import BUILD_COMMAND, ControlPlane, k8s_bin_dir
from pweza.testing.platform import free_port

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = """apiVersion: pweza.ai/v1
kind: AgentTemplate
metadata: {name: bench}
spec: {runtime: {kind: python, handler: "pweza.testing.handlers:noop"}}
"""

POOL = """---
apiVersion: pweza.ai/v1
kind: AgentPool
metadata: {{name: pool-{n:04d}}}
spec: {{templateRef: bench}}
"""


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def ready_count(cp: ControlPlane) -> int:
    pools = json.loads(cp.kubectl("get", "agentpools", "-n", "bench", "-o", "json").stdout)["items"]
    return sum(
        1
        for pool in pools
        if any(
            c["type"] == "Ready" and c["status"] == "True" for c in (pool.get("status") or {}).get("conditions") or []
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pools", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    if k8s_bin_dir() is None:
        raise SystemExit(f"Kubernetes binaries not built: run {BUILD_COMMAND}")
    nodes = max(3, args.pools // 100 + 1)
    with tempfile.TemporaryDirectory(prefix="pweza-operator-bench-") as tmp, ControlPlane(nodes=nodes) as cp:
        cp.kubectl("apply", "--server-side", "-f", str(ROOT / "deploy" / "crds"))
        cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        cp.kubectl("create", "namespace", "bench")
        manifest = Path(tmp) / "pools.yaml"
        pools = "".join(POOL.format(n=n) for n in range(args.pools))
        manifest.write_text(TEMPLATE + pools)
        log = (Path(tmp) / "operator.log").open("wb")
        operator = subprocess.Popen(
            [sys.executable, "-m", "pweza", "operator", "--kubeconfig", str(cp.kubeconfig), "--namespace", "bench",
             "--lease-namespace", "bench", "--metrics-port", str(free_port()), "--health-port", str(free_port()),
             "--host", "127.0.0.1", "--log-level", "WARNING"],
            stdout=log, stderr=log,
        )  # fmt: skip
        try:
            time.sleep(3)  # let it take the lease and start watching
            started = time.monotonic()
            cp.kubectl("apply", "-n", "bench", "-f", str(manifest), timeout=600)
            applied = time.monotonic() - started
            first_all = None
            progress = []
            while time.monotonic() - started < args.timeout:
                count = ready_count(cp)
                progress.append((round(time.monotonic() - started, 1), count))
                print(f"{progress[-1][0]:>7}s  {count}/{args.pools} pools ready", file=sys.stderr, flush=True)
                if count >= args.pools:
                    first_all = time.monotonic() - started
                    break
                time.sleep(2)
            rss = peak_rss_mb(operator.pid)
        finally:
            operator.terminate()
            operator.wait(60)
    print(
        json.dumps(
            {
                "benchmark": "operator",
                "pools": args.pools,
                "kwok_nodes": nodes,
                "apply_seconds": round(applied, 2),
                "all_ready_seconds": None if first_all is None else round(first_all, 2),
                "pools_per_second": None if first_all is None else round(args.pools / first_all, 1),
                "operator_peak_rss_mb": rss,
                "progress": progress[:: max(1, len(progress) // 20)],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
