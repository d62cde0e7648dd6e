"""The peers' own virtualenv (never the project's), created or completed with the pinned versions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from comparing.console import log
from comparing.systems import PINS


def peers_venv(path: Path) -> tuple[Path, dict[str, str]]:
    """Create or complete the peers' virtualenv; an install error is kept per system."""
    errors: dict[str, str] = {}
    python = path / "bin" / "python"
    if not python.exists():
        log(f"creating the peers' virtualenv {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=False)
    check = "import importlib.metadata as m, json, sys; v = {}\nfor n in sys.argv[1:]:\n"
    check += "    try: v[n] = m.version(n)\n    except m.PackageNotFoundError: v[n] = None\nprint(json.dumps(v))"
    for system, pins in PINS.items():
        wanted = {pin.split("==")[0].split("[")[0]: pin.split("==")[1] for pin in pins}
        found = json.loads(subprocess.run([str(python), "-c", check, *wanted], capture_output=True, text=True).stdout)
        if found == wanted:
            continue
        log(f"installing {' '.join(pins)} into {path}")
        done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *pins], capture_output=True, text=True)
        if done.returncode != 0:
            errors[system] = f"pip install {' '.join(pins)} failed: {done.stderr.strip()[-1500:]}"
            log(errors[system])
    return python, errors
