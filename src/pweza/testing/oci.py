"""An OCI image archive holding one static binary, written directly (no builder, no registry).

The real test node runs its add-ons (CoreDNS, metrics-server) as pods, as a cluster would; their
binaries come from hack/build-k8s.sh and need nothing else in the image. ``ctr images import``
takes the archive and names the image after the index's ``io.containerd.image.name``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import pathlib
import tarfile
from typing import Any

__all__ = ["write_binary_image"]

_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_CONFIG = "application/vnd.oci.image.config.v1+json"
_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(binary: pathlib.Path, path_in_image: str) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(path_in_image.lstrip("/"))
        info.size = binary.stat().st_size
        info.mode = 0o755
        info.mtime = 0  # the same binary gives the same image
        with binary.open("rb") as handle:
            tar.addfile(info, handle)
    return raw.getvalue()


def write_binary_image(
    binary: pathlib.Path, name: str, archive: pathlib.Path, *, user: str = "65532", args: tuple[str, ...] = ()
) -> pathlib.Path:
    """Write ``archive``: image ``name`` whose only file is ``binary`` at ``/<binary name>``, its
    entrypoint, run as ``user``. Rewritten only when the binary is newer than the archive."""
    if archive.exists() and archive.stat().st_mtime >= binary.stat().st_mtime:
        return archive
    path_in_image = f"/{binary.name}"
    layer_tar = _layer(binary, path_in_image)
    layer = gzip.compress(layer_tar, compresslevel=1, mtime=0)
    config: dict[str, Any] = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": [path_in_image], "Cmd": list(args), "User": user, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [_digest(layer_tar)]},
    }
    config_blob = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": _MANIFEST,
        "config": {"mediaType": _CONFIG, "digest": _digest(config_blob), "size": len(config_blob)},
        "layers": [{"mediaType": _LAYER, "digest": _digest(layer), "size": len(layer)}],
    }
    manifest_blob = json.dumps(manifest, sort_keys=True).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": _MANIFEST,
                "digest": _digest(manifest_blob),
                "size": len(manifest_blob),
                "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name},
            }
        ],
    }
    files = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps(index).encode(),
        **{f"blobs/sha256/{_digest(b)[7:]}": b for b in (layer, config_blob, manifest_blob)},
    }
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(".partial")
    with tarfile.open(partial, mode="w") as tar:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    partial.replace(archive)
    return archive
