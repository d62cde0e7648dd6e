"""The Swagger UI and ReDoc copies in the package are exactly what `make docs-assets` took from
the pinned npm tarballs, licences included, and nothing else lies beside them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pweza.api.docs import STATIC_DIR

ROOT = Path(__file__).resolve().parents[2]


def manifest() -> dict[str, dict[str, object]]:
    loaded: dict[str, dict[str, object]] = json.loads((STATIC_DIR / "assets.json").read_text())
    return loaded


def test_each_copied_file_is_the_one_recorded_from_its_tarball() -> None:
    for folder, entry in manifest().items():
        sums = entry["sha256"]
        assert isinstance(sums, dict)
        for name, recorded in sums.items():
            data = (STATIC_DIR / folder / name).read_bytes()
            assert hashlib.sha256(data).hexdigest() == recorded, f"{folder}/{name} changed: run `make docs-assets`"
        present = {path.name for path in (STATIC_DIR / folder).iterdir()}
        assert present == set(sums), f"static/{folder} holds files the manifest does not list"


def test_each_bundle_carries_its_licence() -> None:
    for folder, entry in manifest().items():
        sums = entry["sha256"]
        assert isinstance(sums, dict)
        assert "LICENSE" in sums, folder
        assert any(name.endswith(".LICENSE.txt") for name in sums), f"{folder}: the bundled libraries' notices"


def test_the_pins_in_the_vendoring_script_are_the_copied_versions() -> None:
    script = (ROOT / "hack" / "vendor-docs-assets.sh").read_text()
    for entry in manifest().values():
        assert f'"{entry["package"]} {entry["version"]} {entry["integrity"]}"' in script
