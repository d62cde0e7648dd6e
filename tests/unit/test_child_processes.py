"""The children the kits and `pweza up` start (components, agents, the expression worker) start
reliably in a process whose gRPC threads are busy, and still die with the process that started them.

Started with a `preexec_fn` (Python forks and runs code in the child), about one child in three
aborted with SIGABRT in gRPC's fork handlers: coredns and kube-controller-manager exited -6 at
start-up in CI. `dies_with_parent` sets the death signal with setpriv instead."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from pweza.manager.children import dies_with_parent
from pweza.testing.waiting import eventually


@pytest.fixture
def busy_grpc() -> Iterator[None]:
    """A gRPC server in this process and a thread connecting to it over and over."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    stop = threading.Event()

    def connect_again_and_again() -> None:
        while not stop.is_set():
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, contextlib.suppress(grpc.FutureTimeoutError):
                grpc.channel_ready_future(channel).result(timeout=1)

    poker = threading.Thread(target=connect_again_and_again, daemon=True)
    poker.start()
    try:
        yield
    finally:
        stop.set()
        poker.join(timeout=5)
        server.stop(grace=None)


@pytest.mark.usefixtures("busy_grpc")
def test_children_start_while_grpc_threads_are_busy() -> None:
    exits = [subprocess.run(dies_with_parent(["/bin/true"], signal.SIGKILL), timeout=30).returncode for _ in range(150)]
    assert [code for code in exits if code != 0] == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie nobody has reaped yet is dead too (its parent, init, reaps it soon).
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def test_a_child_dies_when_the_process_that_started_it_is_killed() -> None:
    parent = subprocess.Popen(
        [
            sys.executable, "-c",
            "import subprocess, sys, time\n"
            "from pweza.manager.children import dies_with_parent\n"
            "child = subprocess.Popen(dies_with_parent(['sleep', '120']))\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        # setpriv sets the death signal, then execs the command: once the command runs, it is set.
        eventually(lambda: _command(child).startswith("sleep"), timeout=10, what="setpriv to exec the command")
        parent.kill()
        parent.wait(timeout=10)
        eventually(lambda: not _alive(child), timeout=10, what=f"the child {child} to die with its parent")
    finally:
        parent.kill()
