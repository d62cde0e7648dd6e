"""`pip install pweza-core` is the runtime only: the dev tools (linters, type checkers, test
runners, code generators, benchmark peers) come with the `dev` extra and nothing the package
runs imports them."""

from __future__ import annotations

import ast
import importlib.metadata
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.timeout(180)  # builds a wheel and starts interpreters

ROOT = Path(__file__).resolve().parents[2]
# Tools that are not in the dev extra today but must never become part of the runtime either:
# the benchmarks' peers (benchmarks/compare.py installs them apart) and common test helpers.
NEVER_AT_RUN_TIME = {"pytest", "hypothesis", "celery", "redis", "ray", "prefect", "matplotlib", "py-spy", "coverage"}
# The import names of the dev tools, blocked in the import test below.
DEV_MODULES = (
    "pytest", "_pytest", "pytest_asyncio", "pytest_timeout", "schemathesis", "hypothesis", "mypy",
    "mypy_protobuf", "ruff", "importlinter", "grpc_tools", "kubernetes_validate",
)  # fmt: skip
# Every entry point of the package: the CLI (which reaches the manager, agent and operator),
# the REST app, the gRPC server and the public testing helpers.
ENTRY_MODULES = (
    "pweza.cli.main", "pweza.agent.main", "pweza.operator.main", "pweza.api.app", "pweza.rpc.server",
    "pweza.manager.service", "pweza.testing", "pweza.testing.platform",
)  # fmt: skip


def dev_tools() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dev = {canonicalize_name(Requirement(r).name) for r in pyproject["project"]["optional-dependencies"]["dev"]}
    return dev | {canonicalize_name(name) for name in NEVER_AT_RUN_TIME}


def unconditional(distribution: str) -> list[Requirement]:
    """The requirements a plain install of `distribution` brings (no extras asked for)."""
    found = [Requirement(text) for text in importlib.metadata.requires(distribution) or []]
    return [req for req in found if req.marker is None or req.marker.evaluate({"extra": ""})]


def test_the_installed_package_requires_no_dev_tool_unconditionally() -> None:
    runtime = {canonicalize_name(req.name) for req in unconditional("pweza-core")}
    assert len(runtime) > 10
    assert runtime & dev_tools() == set()


def test_the_installed_metadata_is_the_pyproject_of_this_tree() -> None:
    # Otherwise the test above would judge an older install: `make install` installs afresh.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = {str(Requirement(text)) for text in pyproject["project"]["dependencies"]}
    assert {str(req) for req in unconditional("pweza-core")} == declared, "stale install: run `make install`"


def test_no_dev_tool_comes_in_through_a_runtime_dependency() -> None:
    seen: dict[str, str] = {}
    waiting = [("pweza-core", "")]
    while waiting:
        name, parent = waiting.pop()
        key = canonicalize_name(name)
        if key in seen:
            continue
        seen[key] = parent
        try:
            requirements = unconditional(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # a requirement for another platform or Python, not installed here
        waiting += [(req.name, key) for req in requirements]
    pulled = {tool: seen[tool] for tool in dev_tools() & set(seen)}
    assert pulled == {}, f"dev tools required by runtime packages (tool: required by): {pulled}"


def test_every_entry_point_imports_without_the_dev_tools() -> None:
    # A fresh interpreter in which importing any dev tool fails, as on a slim install.
    script = f"""
import importlib, importlib.abc, sys
blocked = {DEV_MODULES!r}
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {{name!r}} (a dev tool)")
        return None
sys.meta_path.insert(0, NotInstalled())
for module in {ENTRY_MODULES!r}:
    importlib.import_module(module)
from pweza.cli.main import app
try:
    app(["--help"], prog_name="pweza")
except SystemExit as done:
    assert done.code == 0, done.code
loaded = sorted(name for name in sys.modules if name.split(".")[0] in blocked)
assert not loaded, loaded
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Usage" in done.stdout


# Imported by the package but deliberately no requirement of it, each with where it comes from.
OUTSIDE_REQUIREMENTS = {
    # pweza.testing.local_model_server, run as LocalModel's child process with the model cache on
    # its PYTHONPATH; `make model` (hack/ensure-model.sh) installs it there, pinned.
    "xllamacpp": "src/pweza/testing/local_model_server.py",
}


def test_every_library_the_package_imports_is_a_declared_runtime_requirement() -> None:
    # Not merely present because some other requirement happens to bring it today.
    declared = {canonicalize_name(req.name) for req in unconditional("pweza-core")}
    owners = importlib.metadata.packages_distributions()
    undeclared: dict[str, str] = {}
    for path in sorted((ROOT / "src" / "pweza").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "pweza":
                    continue
                if OUTSIDE_REQUIREMENTS.get(top) == str(path.relative_to(ROOT)):
                    continue
                distributions = {canonicalize_name(owner) for owner in owners.get(top, [top])}
                if not distributions & declared:
                    undeclared[top] = str(path.relative_to(ROOT))
    assert undeclared == {}, f"imported but not in [project] dependencies (module: first file): {undeclared}"


def test_the_image_installs_the_runtime_only() -> None:
    # The Dockerfile installs the package without extras, from a wheelhouse that
    # hack/build-image.sh makes of [project] dependencies alone.
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = [line.strip() for line in dockerfile.splitlines() if "pip install" in line]
    assert any(line.endswith("pip install ${PIP_INSTALL_OPTIONS} . \\") for line in installs), installs
    assert not any(".[" in line for line in installs), installs
    script = (ROOT / "hack" / "build-image.sh").read_text()
    assert '["project"]["dependencies"]' in script
    assert "optional-dependencies" not in script


def test_the_wheel_carries_the_api_docs_assets_and_the_test_kit_manifests(tmp_path: Path) -> None:
    # An editable install reads them from the tree; the image's regular install has only what
    # package-data puts in the wheel. Built from a copy of what the Dockerfile copies.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(tmp_path),
        ".",
    ]
    done = subprocess.run(command, cwd=source, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = tmp_path.glob("pweza_core-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    static = ROOT / "src" / "pweza" / "api" / "static"
    expected = {
        f"pweza/{path.relative_to(ROOT / 'src' / 'pweza').as_posix()}" for path in static.rglob("*") if path.is_file()
    }
    assert len(expected) > 8
    assert expected - names == set(), "package-data misses files the docs pages load"
    # pweza.testing.controlplane hands kwok its Stage objects from this file.
    assert "pweza/testing/manifests/kwok-stages.yaml" in names, "package-data misses the test kit's manifests"
