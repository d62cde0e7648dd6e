"""The images of hack/build-image.sh, imported into a private containerd and run once each.

The containerd here is our own (config, root, state and socket in a temp dir, the CRI plugin
off: nothing but ctr talks to it); the machine's containerd, if any, is not touched. Needs
root, containerd, ctr and runc (`apt-get install containerd runc`) and the built archives
(hack/build-image.sh; `make test` builds them). In CI nothing here skips.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pweza import __version__
from pweza.testing.images import (
    BUILD_IMAGES_COMMAND,
    CORE_IMAGE,
    IMAGES,
    PAUSE_IMAGE,
    POSTGRES_IMAGE,
    image_archives,
    import_images,
)
from tests.conftest import missing

# The first test also pays for importing some 500 MB of archives, slow on a busy 2-core machine.
pytestmark = [pytest.mark.node, pytest.mark.timeout(900)]

NAMESPACE = "k8s.io"
START_TIMEOUT = 30.0
RUN_TIMEOUT = 120.0
POSTGRES_UID = 999


def _mountpoints_under(directory: Path) -> list[str]:
    """Mount points at or under directory, deepest first (fields of /proc/self/mountinfo)."""
    prefix = str(directory)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


class Containerd:
    """A containerd of our own, and ctr against it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "containerd.sock"
        self.log = directory / "containerd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        config = self.directory / "config.toml"
        # CRI off: these checks use ctr alone, and CRI would want CNI and a kubelet.
        config.write_text(
            f"""version = 2
root = "{self.directory}/root"
state = "{self.directory}/state"
oom_score = 0
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{self.socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{self.directory}/opt"
"""
        )
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                ["containerd", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"containerd exited ({self.process.returncode}):\n{self.log.read_text()[-4000:]}")
            if self.socket.exists() and self.ctr("version", check=False, timeout=10).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"containerd did not answer within {START_TIMEOUT:.0f}s:\n{self.log.read_text()[-4000:]}")

    def command(self, *args: str) -> list[str]:
        return ["ctr", "--address", str(self.socket), "-n", NAMESPACE, *args]

    def ctr(self, *args: str, check: bool = True, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
        return result

    def task_pid(self, container: str) -> int | None:
        for line in self.ctr("tasks", "ls", check=False, timeout=10).stdout.splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 3 and fields[0] == container and fields[2] == "RUNNING":
                return int(fields[1])
        return None

    def wait_running(self, container: str, process: subprocess.Popen[str]) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            pid = self.task_pid(container)
            if pid is not None:
                return pid
            if process.poll() is not None:
                raise AssertionError(f"{container} exited ({process.returncode}) before it ran: {process.stdout}")
            time.sleep(0.2)
        raise AssertionError(f"{container} not running after {START_TIMEOUT:.0f}s")

    def stop(self) -> None:
        """Kills what runs, containerd and its shims, and undoes the mounts; never raises."""
        if self.process is not None and self.process.poll() is None:
            for container in self.ctr("containers", "ls", "-q", check=False, timeout=10).stdout.split():
                self.ctr("tasks", "kill", "-a", "-s", "SIGKILL", container, check=False, timeout=10)
                self.ctr("tasks", "delete", "-f", container, check=False, timeout=10)
                self.ctr("containers", "delete", container, check=False, timeout=10)
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        # Shims outlive containerd by design: find ours by the address they were given.
        for pid in self._shim_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for point in _mountpoints_under(self.directory):
            subprocess.run(["umount", "-R", point], capture_output=True, timeout=30, check=False)
        for point in _mountpoints_under(self.directory):
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=30, check=False)

    def _shim_pids(self) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and str(self.socket).encode() in argv:
                pids.append(int(entry.name))
        return pids


@pytest.fixture(scope="module")
def archives() -> dict[str, Path]:
    found = image_archives()
    if found is None:
        missing(f"the images are not built: run {BUILD_IMAGES_COMMAND} as root (make test does)")
    assert found is not None
    return found


@pytest.fixture(scope="module")
def containerd(archives: dict[str, Path]) -> Iterator[Containerd]:
    missing = [tool for tool in ("containerd", "ctr", "runc", "containerd-shim-runc-v2") if shutil.which(tool) is None]
    if missing:
        missing(f"{', '.join(missing)} not installed: apt-get install containerd runc")
    if os.geteuid() != 0:
        missing("running containers with a private containerd needs root")
    # A short path: the socket's path must fit in sun_path (108 bytes).
    directory = Path(tempfile.mkdtemp(prefix="pweza-ctrd-"))
    daemon = Containerd(directory)
    try:
        daemon.start()
        import_images("ctr", daemon.socket, archives)
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_the_archives_import_under_their_names(containerd: Containerd) -> None:
    names = set(containerd.ctr("images", "ls", "-q").stdout.split())
    assert set(IMAGES) <= names, names
    assert f"ghcr.io/pweza/pweza-core:{__version__}" == CORE_IMAGE


def test_pweza_core_runs_pweza_version_as_1000_on_a_read_only_root(containerd: Containerd) -> None:
    version = containerd.ctr("run", "--rm", "--read-only", CORE_IMAGE, "core-version", "/venv/bin/pweza", "version")
    assert __version__ in version.stdout, version.stdout + version.stderr

    # The image's user, no shell, and the compiled wheels load against the runtime base's libraries.
    probe = (
        "import json, os, ssl, sqlite3, zoneinfo;"
        "import grpc, orjson, pydantic_core, asyncpg, greenlet, sqlalchemy, yaml, cel, uvicorn, fastapi, kopf;"
        "print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'cwd': os.getcwd(),"
        " 'shells': [p for p in ('/bin/sh', '/bin/bash', '/usr/bin/sh', '/bin/dash') if os.path.lexists(p)],"
        " 'apt': os.path.lexists('/usr/bin/apt') or os.path.lexists('/usr/bin/dpkg'),"
        " 'cafile': os.path.getsize(ssl.get_default_verify_paths().cafile or '/nonexistent'),"
        " 'utc': str(zoneinfo.ZoneInfo('UTC'))}))"
    )
    result = containerd.ctr("run", "--rm", "--read-only", CORE_IMAGE, "core-probe", "/venv/bin/python", "-c", probe)
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    assert (facts["uid"], facts["gid"]) == (1000, 1000)
    assert facts["cwd"] == "/tmp"
    assert facts["shells"] == [] and facts["apt"] is False
    assert facts["cafile"] > 100_000, "the CA bundle is there"
    assert facts["utc"] == "UTC"


def test_postgres_initialises_as_999_and_answers(containerd: Containerd) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="pweza-pg-"))
    try:
        data, secrets = scratch / "data", scratch / "secrets"
        data.mkdir()
        secrets.mkdir()
        os.chown(data, POSTGRES_UID, POSTGRES_UID)
        password = secrets / "password"
        password.write_text("s3cret-for-the-test\n")
        os.chown(password, POSTGRES_UID, POSTGRES_UID)
        password.chmod(0o400)
        run = containerd.command(
            "run", "--rm", "--read-only",
            "--mount", f"type=bind,src={data},dst=/var/lib/postgresql/data,options=rbind:rw",
            "--mount", f"type=bind,src={secrets},dst=/run/secrets/postgres,options=rbind:ro",
            "--mount", "type=tmpfs,src=tmpfs,dst=/tmp,options=nosuid:nodev:mode=1777",
            "--env", "POSTGRES_PASSWORD_FILE=/run/secrets/postgres/password",
            "--env", "POSTGRES_DB=pweza",
            POSTGRES_IMAGE, "postgres",
        )  # fmt: skip
        server = subprocess.Popen(run, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            pid = containerd.wait_running("postgres", server)
            uid_line = next(
                line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Uid:")
            )
            assert uid_line.split()[1:3] == [str(POSTGRES_UID)] * 2
            deadline = time.monotonic() + 60
            ready = containerd.ctr("tasks", "exec", "--exec-id", "ready0", "postgres", "pg_isready", check=False)
            attempt = 0
            while ready.returncode != 0 and time.monotonic() < deadline:
                time.sleep(0.5)
                attempt += 1
                ready = containerd.ctr(
                    "tasks", "exec", "--exec-id", f"ready{attempt}", "postgres",
                    "pg_isready", "-h", "127.0.0.1", "-p", "5432", check=False,
                )  # fmt: skip
            assert ready.returncode == 0, ready.stdout + ready.stderr
            # Over TCP with the password: scram-sha-256, and the database made on the first start.
            query = containerd.ctr(
                "tasks", "exec", "--exec-id", "psql", "postgres", "psql",
                "postgresql://postgres:s3cret-for-the-test@127.0.0.1:5432/pweza", "-Atc",
                "select current_database(), current_user, (select setting from pg_settings where name = 'password_encryption')",
            )  # fmt: skip
            assert query.stdout.strip() == "pweza|postgres|scram-sha-256"
            wrong = containerd.ctr(
                "tasks", "exec", "--exec-id", "psql-wrong", "postgres", "psql",
                "postgresql://postgres:wrong@127.0.0.1:5432/pweza", "-Atc", "select 1", check=False,
            )  # fmt: skip
            assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
            containerd.ctr("tasks", "kill", "-s", "SIGINT", "postgres")
            output, _ = server.communicate(timeout=60)
            assert server.returncode == 0, output
        finally:
            if server.poll() is None:
                containerd.ctr("tasks", "kill", "-a", "-s", "SIGKILL", "postgres", check=False, timeout=10)
                server.communicate(timeout=30)
        assert (data / "pgdata" / "PG_VERSION").read_text().strip() == "15"
        assert (data / "pgdata").stat().st_uid == POSTGRES_UID
        assert "database system is shut down" in output
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_pause_runs_as_65535_and_exits_0_on_sigterm(containerd: Containerd) -> None:
    run = containerd.command("run", "--rm", "--read-only", PAUSE_IMAGE, "pause")
    sandbox = subprocess.Popen(run, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        pid = containerd.wait_running("pause", sandbox)
        status = Path(f"/proc/{pid}/status").read_text()
        assert "Uid:\t65535\t65535" in status
        containerd.ctr("tasks", "kill", "-s", "SIGTERM", "pause")
        output, _ = sandbox.communicate(timeout=30)
        assert sandbox.returncode == 0, output
    finally:
        if sandbox.poll() is None:
            containerd.ctr("tasks", "kill", "-a", "-s", "SIGKILL", "pause", check=False, timeout=10)
            sandbox.communicate(timeout=30)


def test_pause_reaps_the_orphans_of_its_pid_namespace(tmp_path: Path) -> None:
    """As PID 1 of a namespace pause inherits every orphan; it must reap them (no zombies)."""
    missing = [tool for tool in ("gcc", "unshare", "nsenter") if shutil.which(tool) is None]
    if missing:
        missing(f"{', '.join(missing)} not installed: apt-get install gcc libc6-dev util-linux")
    if os.geteuid() != 0:
        missing("a PID namespace needs root")
    binary = tmp_path / "pause"
    source = Path(__file__).resolve().parents[2] / "hack" / "pause" / "pause.c"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(binary), str(source)], check=True, timeout=120)
    holder = subprocess.Popen(["unshare", "--pid", "--fork", str(binary)])
    pause_pid: int | None = None
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while pause_pid is None and time.monotonic() < deadline:
            children = Path(f"/proc/{holder.pid}/task/{holder.pid}/children")
            pids = children.read_text().split() if children.exists() else []
            pause_pid = int(pids[0]) if pids else None
            time.sleep(0.05)
        assert pause_pid is not None, "pause did not start"

        def children_of_pause() -> list[tuple[int, str]]:
            found = []
            for pid in Path(f"/proc/{pause_pid}/task/{pause_pid}/children").read_text().split():
                with contextlib.suppress(OSError):
                    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                    found.append((int(pid), state))
            return found

        # The shell exits at once, so its two sleeps become pause's children; they end soon after.
        subprocess.run(
            ["nsenter", "-t", str(pause_pid), "-p", "--", "sh", "-c", "sleep 1 & sleep 1 & exit 0"],
            check=True, timeout=30,
        )  # fmt: skip
        adopted = children_of_pause()
        assert len(adopted) == 2, adopted
        deadline = time.monotonic() + 10
        while children_of_pause() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert children_of_pause() == [], "zombies left unreaped"
        os.kill(pause_pid, signal.SIGTERM)
        assert holder.wait(timeout=30) == 0
    finally:
        if holder.poll() is None:
            # Killing unshare alone would leave pause running as the namespace's init.
            if pause_pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pause_pid, signal.SIGKILL)
            holder.kill()
            holder.wait(timeout=30)
