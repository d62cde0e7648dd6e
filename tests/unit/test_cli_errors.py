"""The CLI as a person meets it without a manager: one-line errors, help with examples, version, completion."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pweza import __version__

pytestmark = pytest.mark.timeout(180)


def pweza(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "COLUMNS": "200", **(env or {})}
    for name in ("PWEZA_URL", "PWEZA_TOKEN", "HTTP_PORT", "GRPC_PORT", "METRICS_PORT", "PWEZA_DEBUG"):
        if env is None or name not in env:
            environment.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "pweza", *args], env=environment, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_version_is_a_flag_and_a_command() -> None:
    assert pweza("--version").stdout.strip() == __version__
    assert pweza("version").stdout.strip() == __version__


def test_help_shows_examples_and_the_environment_variables() -> None:
    commands = ["get", "describe", "apply", "diff", "delete", "logs", "init", "up", "manager", "agent", "run"]
    commands += ["runs", "task submit", "task list", "token create", "doctor"]
    for command in commands:
        shown = pweza(*command.split(), "--help").stdout
        assert "Examples:" in shown, command
    get = pweza("get", "--help").stdout
    assert "[env var: PWEZA_URL]" in get and "[env var: PWEZA_TOKEN]" in get
    for command in ("up", "manager"):
        shown = pweza(command, "--help").stdout
        for flag, env in (
            ("--http-port", "HTTP_PORT"),
            ("--grpc-port", "GRPC_PORT"),
            ("--metrics-port", "METRICS_PORT"),
        ):
            assert flag in shown and f"[env var: {env}]" in shown, (command, flag)


def test_shell_completion_is_on() -> None:
    done = pweza(env={"_PWEZA_COMPLETE": "complete_bash", "COMP_WORDS": "pweza descr", "COMP_CWORD": "1"})
    assert done.stdout.split() == ["describe"]


def test_an_unreachable_manager_is_one_line_and_debug_shows_the_traceback() -> None:
    line = one_line_error(pweza("get", "ap", "-s", "http://127.0.0.1:1"))
    assert "cannot reach the manager at http://127.0.0.1:1" in line
    debug = pweza("--debug", "get", "ap", "-s", "http://127.0.0.1:1")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_usage_mistakes_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    unknown = pweza("get", "gizmos", "-s", "http://127.0.0.1:1")
    assert unknown.returncode == 2 and "unknown kind 'gizmos'" in one_line_error(unknown)
    missing = pweza("run", "./missing.yaml", "-s", "http://127.0.0.1:1")
    assert missing.returncode == 2 and "./missing.yaml: no such file or directory" in one_line_error(missing)
    absent = pweza("apply", "-f", str(tmp_path / "nothing.yaml"), "-s", "http://127.0.0.1:1")
    assert absent.returncode == 2 and "no such file or directory" in one_line_error(absent)
    nameless = pweza("describe", "ap", "-s", "http://127.0.0.1:1")
    assert nameless.returncode == 2 and "give the name" in one_line_error(nameless)
    bad_url = pweza("get", "ap", "-s", "ftp://example")
    assert bad_url.returncode == 2 and "expected http://" in one_line_error(bad_url)


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    done = pweza("manager", "--config", str(tmp_path / "absent.yaml"))
    assert done.returncode == 2 and "absent.yaml: no such file" in one_line_error(done)


def test_a_port_in_use_is_one_line_for_manager_and_up(tmp_path: Path, taken_port: int) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}", "PWEZA_CONFIG": str(tmp_path / "none.yaml")}
    manager = pweza("manager", env={**env, "HTTP_PORT": str(taken_port)})
    line = one_line_error(manager)
    assert f"127.0.0.1:{taken_port} (HTTP): address already in use" in line and "HTTP_PORT" in line
    flagged = pweza("manager", "--grpc-port", str(taken_port), env=env)
    assert f"127.0.0.1:{taken_port} (gRPC): address already in use" in one_line_error(flagged)
    up = pweza("up", "--data-dir", str(tmp_path / "data"), "--metrics-port", str(taken_port))
    line = one_line_error(up)
    assert "(metrics): address already in use" in line and "--metrics-port" in line
    from_env = pweza("up", "--data-dir", str(tmp_path / "data"), env={"GRPC_PORT": str(taken_port)})
    assert "(gRPC): address already in use" in one_line_error(from_env), "up honours GRPC_PORT"


def test_init_writes_a_project_and_will_not_overwrite_it(tmp_path: Path) -> None:
    made = pweza("init", "my-agents", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "my-agents"
    assert sorted(p.name for p in project.iterdir()) == ["agents.yaml", "my_agents_agents.py", "workflow.yaml"]
    assert "handler: my_agents_agents:greet" in (project / "agents.yaml").read_text()
    again = pweza("init", "my-agents", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in one_line_error(again)
    assert pweza("init", "my-agents", "--force", cwd=tmp_path).returncode == 0
