"""`make demo`: the embedded platform running an example end to end.

Starts `pweza up` in a throwaway data directory on free loopback ports, then drives it
with the same CLI commands a person would type, and stops it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.markdown import Markdown

from pweza.testing.platform import free_port

ROOT = Path(__file__).resolve().parent.parent


def pweza(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    print(f"\n$ pweza {' '.join(args)}", flush=True)
    done = subprocess.run([sys.executable, "-m", "pweza", *args], env=env, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"demo step failed: pweza {' '.join(args)} (exit {done.returncode})")
    return done


def wait_ready(url: str, process: subprocess.Popen[bytes], data_dir: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("pweza up exited early")
        try:
            if (data_dir / "context.json").exists() and httpx.get(f"{url}/health/ready").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("pweza up did not become ready within 60s")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="pweza-demo-") as tmp:
        data_dir = Path(tmp)
        http, grpc, metrics = free_port(), free_port(), free_port()
        env = {**os.environ, "PWEZA_DATA_DIR": str(data_dir)}
        print("$ pweza up -f examples/support-triage   (in the background)", flush=True)
        up = subprocess.Popen(
            [sys.executable, "-m", "pweza", "up", "-f", str(ROOT / "examples/support-triage"),
             "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)],
            env=env, cwd=ROOT,
        )  # fmt: skip
        try:
            wait_ready(f"http://127.0.0.1:{http}", up, data_dir)
            wait_agents(http, data_dir, count=8)
            pweza("get", "agentpools", env=env)
            print("\n$ pweza run examples/support-triage/workflow.yaml", flush=True)
            workflow = str(ROOT / "examples/support-triage/workflow.yaml")
            done = subprocess.run(
                [sys.executable, "-m", "pweza", "run", workflow, "-o", "json"],
                env=env, text=True, stdout=subprocess.PIPE, timeout=300,
            )  # fmt: skip
            if done.returncode != 0:
                raise SystemExit(f"the triage run did not succeed (exit {done.returncode})")
            outputs = json.loads(done.stdout)
            Console().print(Markdown(outputs["report"]))
            pweza("runs", "list", env=env)
            print("\ndemo finished: 6 kinds of agents cooperated on one triage run", flush=True)
        finally:
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(60)
            except subprocess.TimeoutExpired:
                up.kill()


def wait_agents(http: int, data_dir: Path, count: int) -> None:
    token = (data_dir / "admin-token").read_text()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listed = httpx.get(
            f"http://127.0.0.1:{http}/api/v1/agents", headers={"Authorization": f"Bearer {token}"}
        ).json()["items"]
        if len(listed) >= count:
            return
        time.sleep(0.2)
    raise SystemExit(f"fewer than {count} agents connected within 60s")


if __name__ == "__main__":
    main()
