"""A real, throwaway PostgreSQL server for tests.

``PostgresServer`` runs Debian's PostgreSQL binaries (``/usr/lib/postgresql/*/bin``, or
``$PWEZA_PG_BIN``, or ``initdb`` on PATH) on a free 127.0.0.1 port, with its cluster in one
temporary directory that is removed on exit. Install the binaries with
``hack/ensure-postgres.sh``; tests should skip (or, in CI, fail) when ``postgres_bin_dir()``
is None::

    with PostgresServer() as server:
        url = server.create_database("t1")      # postgresql://pweza@127.0.0.1:PORT/t1
        server.stop()                            # the data stays; the URL stays valid
        server.start()                           # same port again

PostgreSQL refuses to run as root, so when we are root the cluster belongs to a system
user (``pweza-pg``, created on first use) and every server command runs through ``runuser``.
Authentication is ``trust`` and the server listens on 127.0.0.1 only; ``fsync`` is off unless
``settings`` say otherwise, so this is for tests only: a machine crash loses the cluster (which
is thrown away anyway).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Final, Self

__all__ = ["ENSURE_COMMAND", "PostgresServer", "PostgresServerError", "postgres_bin_dir"]

ENSURE_COMMAND: Final = "hack/ensure-postgres.sh"
SERVER_USER: Final = "pweza-pg"
DATABASE_USER: Final = "pweza"
_REQUIRED: Final = ("initdb", "pg_ctl", "postgres", "psql")
_DEBIAN_BIN_GLOB: Final = "/usr/lib/postgresql/*/bin"
_START_TIMEOUT: Final = 30
_STOP_TIMEOUT: Final = 30
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SETTING_NAME = re.compile(r"^[a-z_][a-z0-9_.]*$")
_SETTING_VALUE = re.compile(r"^[A-Za-z0-9_.:/+-]+$")


class PostgresServerError(RuntimeError):
    pass


def _has_binaries(directory: Path) -> bool:
    return all((directory / name).is_file() and os.access(directory / name, os.X_OK) for name in _REQUIRED)


def _version_key(directory: Path) -> tuple[int, ...]:
    digits = re.findall(r"\d+", directory.parent.name)
    return tuple(int(d) for d in digits) or (0,)


def postgres_bin_dir() -> Path | None:
    """Where initdb, pg_ctl, postgres and psql are (the newest Debian version first), or None."""
    override = os.environ.get("PWEZA_PG_BIN")
    if override:
        return Path(override) if _has_binaries(Path(override)) else None
    candidates = sorted((Path(p) for p in glob.glob(_DEBIAN_BIN_GLOB)), key=_version_key, reverse=True)
    for directory in candidates:
        if _has_binaries(directory):
            return directory
    on_path = shutil.which("initdb")
    if on_path is not None and _has_binaries(Path(on_path).parent):
        return Path(on_path).parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env() -> dict[str, str]:
    """The environment without PG* variables, so a developer's PGHOST or PGPASSWORD cannot leak in."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _ensure_server_user() -> None:
    try:
        pwd.getpwnam(SERVER_USER)
        return
    except KeyError:
        pass
    result = subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            SERVER_USER,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    # 9: the user appeared meanwhile (another process created it).
    if result.returncode not in (0, 9):
        raise PostgresServerError(f"cannot create the system user {SERVER_USER}: {result.stderr.strip()}")


class PostgresServer:
    """One throwaway PostgreSQL cluster; a context manager (start on enter, remove on exit)."""

    def __init__(
        self,
        bin_dir: Path | None = None,
        database: str = "pweza",
        port: int | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        """`settings` are extra server settings (``-c name=value``), e.g. ``{"fsync": "on"}`` to measure
        with real flushes."""
        found = bin_dir or postgres_bin_dir()
        if found is None:
            raise PostgresServerError(f"PostgreSQL is not installed; run {ENSURE_COMMAND}")
        self.bin_dir = found
        self.database = database
        self.port = port or _free_port()
        self.host = "127.0.0.1"
        self._as_root = os.geteuid() == 0
        self._root: Path | None = None
        self._running = False
        self.settings = {"fsync": "off", "full_page_writes": "off", "max_connections": "200", **(settings or {})}
        for name, value in self.settings.items():
            # pg_ctl hands the options to a shell: allow plain words only.
            if not _SETTING_NAME.match(name) or not _SETTING_VALUE.match(value):
                raise ValueError(f"unsupported server setting {name}={value!r}")

    # -- paths and commands ----------------------------------------------------
    @property
    def root(self) -> Path:
        if self._root is None:
            raise PostgresServerError("the server has not been set up")
        return self._root

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    @property
    def url(self) -> str:
        """The URL of the default database (created on start)."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql://{DATABASE_USER}@{self.host}:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return self._running

    def _server_command(self, *args: str) -> list[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        return ["runuser", "-u", SERVER_USER, "--", *command] if self._as_root else command

    def _run(self, command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=_clean_env(),
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as error:
            raise PostgresServerError(f"{command[0]} took longer than {timeout:.0f}s{self._log_tail()}") from error
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip()
            raise PostgresServerError(f"{' '.join(command)} failed ({result.returncode}): {output}{self._log_tail()}")
        return result

    def _log_tail(self, lines: int = 20) -> str:
        if self._root is None:
            return ""
        try:
            text = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\nserver log:\n" + "\n".join(text) if text else ""

    # -- lifecycle -------------------------------------------------------------
    def __enter__(self) -> Self:
        try:
            self.setup()
            self.start()
            self.create_database(self.database)
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.remove()

    def setup(self) -> None:
        """Make the temporary directory and run initdb in it."""
        if self._root is not None:
            return
        # As root, in /tmp: the server user must be able to reach it (TMPDIR may be under /root).
        self._root = Path(tempfile.mkdtemp(prefix="pweza-pg-", dir="/tmp" if self._as_root else None))
        if self._as_root:
            _ensure_server_user()
            shutil.chown(self._root, user=SERVER_USER, group=None)
            os.chmod(self._root, 0o700)
        self._run(
            self._server_command(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                DATABASE_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ),
            timeout=120,
        )

    def start(self) -> None:
        """Start the server (on the same port as before) and wait until it accepts connections."""
        if self._running:
            return
        # fsync=off by default: a throwaway test cluster, never a real database.
        options = " ".join(
            [f"-p {self.port}", "-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={self.root}"]
            + [f"-c {name}={value}" for name, value in self.settings.items()]
        )
        self._run(
            self._server_command(
                "pg_ctl",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                options,
                "-w",
                "-t",
                str(_START_TIMEOUT),
                "start",
            ),
            timeout=_START_TIMEOUT + 10,
        )
        self._running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server, keeping its data; connections are cut at once (``fast``) or the server dies
        (``immediate``, like a crash)."""
        if not self._running:
            return
        try:
            self._run(
                self._server_command(
                    "pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", str(_STOP_TIMEOUT), "stop"
                ),
                timeout=_STOP_TIMEOUT + 10,
            )
        except PostgresServerError:
            self._kill()
        self._running = False

    def _kill(self) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                os.kill(pid, 0)  # raises once the process is gone
                time.sleep(0.05)

    def remove(self) -> None:
        """Stop the server and delete the cluster."""
        if self._root is None:
            return
        try:
            self.stop(mode="immediate")
        finally:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    # -- databases -------------------------------------------------------------
    def psql(self, sql: str, database: str = "postgres", timeout: float = 60) -> str:
        """Run SQL as the superuser and return psql's unaligned output."""
        command = [
            str(self.bin_dir / "psql"),
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-U",
            DATABASE_USER,
            "-d",
            database,
            "-c",
            sql,
        ]
        return self._run(command, timeout=timeout).stdout

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        if not _NAME.match(name):
            raise ValueError(f"not a plain database name: {name!r}")
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        if not _NAME.match(name):
            raise ValueError(f"not a plain database name: {name!r}")
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
