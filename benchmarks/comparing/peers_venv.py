"""The peers' virtualenvs (never the project's), created or completed with the pinned versions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from comparing.console import log
from comparing.systems import PINS

_CHECK = "import importlib.metadata as m, json, sys; v = {}\nfor n in sys.argv[1:]:\n"
_CHECK += "    try: v[n] = m.version(n)\n    except m.PackageNotFoundError: v[n] = None\nprint(json.dumps(v))"


def venv_path(base: Path, venv: str) -> Path:
    """`peers` is `base` itself (~/.cache/pweza/bench-peers); each other one sits beside it."""
    return base if venv == "peers" else base.with_name(f"{base.name}-{venv}")


def peers_venv(path: Path, groups: dict[str, list[str]]) -> tuple[Path, dict[str, str]]:
    """Create or complete one virtualenv with the given groups of pins; an install error is kept per group."""
    errors: dict[str, str] = {}
    python = path / "bin" / "python"
    if not python.exists():
        log(f"creating the virtualenv {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=False)
    for group, pins in groups.items():
        wanted = {pin.split("==")[0].split("[")[0]: pin.split("==")[1] for pin in pins}
        found = json.loads(subprocess.run([str(python), "-c", _CHECK, *wanted], capture_output=True, text=True).stdout)
        if found == wanted:
            continue
        log(f"installing {' '.join(pins)} into {path}")
        done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *pins], capture_output=True, text=True)
        if done.returncode != 0:
            errors[group] = f"pip install {' '.join(pins)} failed: {done.stderr.strip()[-1500:]}"
            log(errors[group])
    return python, errors


def install(base: Path, wanted: dict[str, set[str]]) -> tuple[dict[str, Path], dict[str, str]]:
    """Each virtualenv named in `wanted` (venv -> groups of PINS) ready: its python, and the errors by group."""
    pythons: dict[str, Path] = {}
    errors: dict[str, str] = {}
    for venv, groups in wanted.items():
        python, failed = peers_venv(venv_path(base, venv), {g: PINS[venv][g] for g in sorted(groups)})
        pythons[venv] = python
        errors.update(failed)
    return pythons, errors
