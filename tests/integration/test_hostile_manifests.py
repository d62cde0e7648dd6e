"""Hostile and malformed manifests given to the CLI: refused at once, with the file and the
limit named, exit code 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pweza.testing.platform import Platform, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def billion_laughs() -> str:
    """Nine levels of nine aliases each: 9**9 (387 million) nodes once expanded."""
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 10):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 9)}]")
    # A step's input takes any value: validating and checking it walks every expanded node.
    head = "apiVersion: pweza.ai/v1\nkind: Workflow\nmetadata: {name: lol}\nspec:\n  steps:\n"
    return (
        head + "    - name: a\n      agent: {pool: p}\n      input:\n" + "".join(f"        {line}\n" for line in lines)
    )


def pweza(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    # No manager listens there: every refusal must come before the CLI tries to reach one.
    env = {**os.environ, "PWEZA_URL": f"http://127.0.0.1:{free_port()}", "PWEZA_TOKEN": "pwz_unused"}
    return subprocess.run(
        [sys.executable, "-m", "pweza", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env
    )


def refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    message = " ".join(result.stderr.split())  # rich wraps long lines
    for word in words:
        assert word in message, message


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("bomb.yaml", billion_laughs(), ["bomb.yaml", "aliases expand to more than 10000 nodes", "the limit is 10000"]),
        ("deep.yaml", "[" * 20_000 + "]" * 20_000, ["deep.yaml", "nested more than 100 levels deep", "limit is 100"]),
        ("loop.yaml", "a: &a [*a]\n", ["loop.yaml", "an alias refers to a node that contains it"]),
        ("binary.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", ["binary.yaml", "not UTF-8 text (byte 0 is 0x89)"]),
    ],
)
def test_apply_refuses_hostile_yaml_quickly_naming_the_file_and_the_limit(
    tmp_path: Path, name: str, content: str | bytes, words: list[str]
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    refused(pweza("apply", "-f", str(path), cwd=tmp_path), *words)


def test_run_and_input_files_are_read_with_the_same_limits(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(billion_laughs())
    refused(pweza("run", str(bomb), cwd=tmp_path), "bomb.yaml", "aliases expand")
    inputs = tmp_path / "inputs.yaml"
    inputs.write_text("text: " + "[" * 200 + "]" * 200 + "\n")
    refused(pweza("run", "wordy", "--input-file", str(inputs), cwd=tmp_path), "--input-file", "nested more than 100")


def test_pweza_up_refuses_a_hostile_manifest_and_stops(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(billion_laughs())
    ports = [str(free_port()) for _ in range(3)]
    result = pweza(
        "up", "-f", str(bomb), "--data-dir", str(tmp_path / "data"),
        "--http-port", ports[0], "--grpc-port", ports[1], "--metrics-port", ports[2],
        cwd=tmp_path, timeout=120,
    )  # fmt: skip
    refused(result, "bomb.yaml", "aliases expand to more than 10000 nodes")


def test_a_hostile_config_file_stops_pweza_up_with_a_message(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "config.yaml").write_text(billion_laughs().replace("apiVersion", "#"))
    result = pweza("up", "--data-dir", str(data), "--http-port", str(free_port()), cwd=tmp_path)
    refused(result, "config.yaml", "aliases expand to more than 10000 nodes")


@pytest.mark.parametrize(
    ("foreach", "words"),
    [
        ('"5"', ["spec.steps[0].foreach", "'5' gives a number, not a list", "such as 'inputs.files' or '[1, 2, 3]'"]),
        ("\"{'a': 1}\"", ["spec.steps[0].foreach", "gives a mapping, not a list"]),
        ("7", ["spec.steps[0].foreach", "got a number instead of a string", "a CEL expression that gives a list"]),
    ],
)
def test_apply_refuses_a_foreach_that_cannot_give_a_list(tmp_path: Path, foreach: str, words: list[str]) -> None:
    workflow = tmp_path / "loop.yaml"
    workflow.write_text(
        "apiVersion: pweza.ai/v1\nkind: Workflow\nmetadata: {name: loop}\nspec:\n  steps:\n"
        f"    - {{name: each, agent: {{pool: p}}, foreach: {foreach}}}\n"
    )
    refused(pweza("apply", "-f", str(workflow), cwd=tmp_path), "loop.yaml", *words)


def test_the_rest_api_refuses_a_workflow_value_nested_deeper_than_yaml_allows(platform: Platform) -> None:
    # JSON skips the YAML loader, so the manifest's own nesting limit must refuse it (deeper than
    # orjson's 254 levels, storing it was a 500; the body parser's guard stops at 200).
    deep = "[" * 150 + "]" * 150
    body = (
        '{"apiVersion": "pweza.ai/v1", "kind": "Workflow", "metadata": {"name": "deep"}, '
        f'"spec": {{"steps": [{{"name": "a", "agent": {{"pool": "p"}}, "input": {deep}}}]}}}}'
    )
    with platform.client() as api:
        response = api.put("/api/v1/workflows/deep", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, response.text
        assert response.json()["field"] == "spec.steps[0].input"
        assert "nested more than 100 levels deep; the limit is 100" in response.json()["detail"]
        assert api.get("/api/v1/workflows").json()["items"] == []
