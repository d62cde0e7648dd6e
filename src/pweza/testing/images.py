"""The container images built on this machine by ``hack/build-image.sh``, for tests on real nodes.

The script writes one docker-archive per image into ``$PWEZA_IMAGE_CACHE`` (default
``~/.cache/pweza/images``) and an ``images.json`` there mapping each image name to its
archive. ``image_archives()`` reads it (None when the images are not built: tests skip, or
in CI fail, and say to run ``BUILD_IMAGES_COMMAND``); ``import_images`` loads the archives
into a containerd's ``k8s.io`` namespace, where the kubelet's CRI looks for images::

    archives = image_archives()
    if archives is not None:
        import_images("ctr", "/run/pweza-node/containerd.sock", archives)
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from pweza import __version__

__all__ = [
    "BUILD_IMAGES_COMMAND",
    "CORE_IMAGE",
    "IMAGES",
    "PAUSE_IMAGE",
    "POSTGRES_IMAGE",
    "ImageImportError",
    "image_archives",
    "image_cache_dir",
    "import_images",
]

BUILD_IMAGES_COMMAND: Final = "hack/build-image.sh"
CORE_IMAGE: Final = f"ghcr.io/pweza/pweza-core:{__version__}"
POSTGRES_IMAGE: Final = "ghcr.io/pweza/postgres:15"
PAUSE_IMAGE: Final = "ghcr.io/pweza/pause:1.0"
IMAGES: Final = (CORE_IMAGE, POSTGRES_IMAGE, PAUSE_IMAGE)
# The namespace of the CRI plugin: images imported elsewhere are invisible to the kubelet.
CONTAINERD_NAMESPACE: Final = "k8s.io"
# Importing a few hundred MB from a local file takes seconds; this only bounds a hang.
_IMPORT_TIMEOUT: Final = 600.0


class ImageImportError(RuntimeError):
    pass


def image_cache_dir() -> Path:
    """Where hack/build-image.sh puts the archives and images.json."""
    override = os.environ.get("PWEZA_IMAGE_CACHE")
    return Path(override) if override else Path.home() / ".cache" / "pweza" / "images"


def image_archives() -> dict[str, Path] | None:
    """Each image of IMAGES -> its archive, or None when one of them is not built (or is stale)."""
    manifest = image_cache_dir() / "images.json"
    try:
        entries = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(entries, dict):
        return None
    archives: dict[str, Path] = {}
    for name in IMAGES:
        path = entries.get(name)
        # A manifest of another version of the project names another pweza-core image.
        if not isinstance(path, str) or not Path(path).is_file():
            return None
        archives[name] = Path(path)
    return archives


def import_images(
    ctr_binary: str | os.PathLike[str], containerd_socket: str | os.PathLike[str], archives: Mapping[str, Path]
) -> None:
    """``ctr --address SOCKET -n k8s.io images import ARCHIVE`` for each archive, in order."""
    for name, archive in archives.items():
        command = [
            os.fspath(ctr_binary),
            "--address",
            os.fspath(containerd_socket),
            "-n",
            CONTAINERD_NAMESPACE,
            "images",
            "import",
            os.fspath(archive),
        ]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=_IMPORT_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ImageImportError(f"importing {name} from {archive} took over {_IMPORT_TIMEOUT:.0f}s") from exc
        if result.returncode != 0:
            raise ImageImportError(
                f"importing {name} from {archive} failed ({result.returncode}): {result.stderr.strip()}"
            )
