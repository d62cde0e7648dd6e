"""Provisional: replaced by the image build branch."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
from collections.abc import Iterable
from typing import Final

BUILD_IMAGES_COMMAND: Final = "hack/build-image.sh"
IMAGES: Final = {
    "pweza-core": "ghcr.io/pweza/pweza-core:0.1.0",
    "postgres": "ghcr.io/pweza/postgres:15",
    "pause": "ghcr.io/pweza/pause:1.0",
}


def image_archives() -> dict[str, pathlib.Path] | None:
    cache = pathlib.Path(os.environ.get("PWEZA_IMAGE_CACHE") or pathlib.Path.home() / ".cache/pweza/images")
    manifest = cache / "images.json"
    if not manifest.exists():
        return None
    data = json.loads(manifest.read_text())
    return {name: pathlib.Path(path) for name, path in data.items()}


def import_images(ctr: str, socket: pathlib.Path, archives: Iterable[pathlib.Path]) -> None:
    for archive in archives:
        subprocess.run([ctr, "--address", str(socket), "-n", "k8s.io", "images", "import", str(archive)], check=True)
