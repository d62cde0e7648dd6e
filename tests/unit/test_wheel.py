"""The wheel users install carries what type checkers need (`py.typed`, the generated gRPC stubs
next to the generated modules) and what the manager reads at run time (the migrations)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

REPOSITORY = Path(__file__).resolve().parents[2]


def test_the_wheel_ships_the_generated_stubs_py_typed_and_the_migrations(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", str(REPOSITORY), "-w", str(tmp_path)],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("pweza_core-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    stubs = sorted(
        path.relative_to(REPOSITORY / "src").as_posix() for path in (REPOSITORY / "src/pweza").rglob("*.pyi")
    )
    assert stubs, "the repository has generated stubs to ship"
    assert set(stubs) <= names, sorted(set(stubs) - names)
    assert "pweza/py.typed" in names
    migrations = sorted(
        path.relative_to(REPOSITORY / "src").as_posix()
        for path in (REPOSITORY / "src/pweza/store/migrations").rglob("*.py")
    )
    assert set(migrations) <= names, sorted(set(migrations) - names)


def test_every_package_data_pattern_names_files_that_exist() -> None:
    """A pattern that matches nothing ships nothing: it names a path the tree no longer has."""
    with (REPOSITORY / "pyproject.toml").open("rb") as file:
        patterns = tomllib.load(file)["tool"]["setuptools"]["package-data"]["pweza"]
    package = REPOSITORY / "src/pweza"
    assert [pattern for pattern in patterns if not any(package.glob(pattern))] == []
