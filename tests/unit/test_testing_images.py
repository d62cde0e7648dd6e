"""pweza.testing.images without containers: images.json reading and the ctr command lines."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from pweza import __version__
from pweza.testing.images import (
    CORE_IMAGE,
    IMAGES,
    PAUSE_IMAGE,
    POSTGRES_IMAGE,
    ImageImportError,
    image_archives,
    image_cache_dir,
    import_images,
)


def _build(cache: Path, names: tuple[str, ...] = IMAGES) -> dict[str, str]:
    cache.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for name in names:
        archive = cache / (name.rsplit("/", 1)[1].replace(":", "-") + ".tar")
        archive.write_bytes(b"not really a tar")
        manifest[name] = str(archive)
    (cache / "images.json").write_text(json.dumps(manifest))
    return manifest


def test_the_names_are_the_charts_contract() -> None:
    assert (f"ghcr.io/pweza/pweza-core:{__version__}", "ghcr.io/pweza/postgres:15", "ghcr.io/pweza/pause:1.0") == IMAGES
    assert (CORE_IMAGE, POSTGRES_IMAGE, PAUSE_IMAGE) == IMAGES


def test_cache_dir_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PWEZA_IMAGE_CACHE", str(tmp_path / "c"))
    assert image_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("PWEZA_IMAGE_CACHE")
    assert image_cache_dir() == Path.home() / ".cache" / "pweza" / "images"


def test_archives_when_built_and_none_otherwise(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cache = tmp_path / "images"
    monkeypatch.setenv("PWEZA_IMAGE_CACHE", str(cache))
    assert image_archives() is None, "nothing built"
    manifest = _build(cache)
    assert image_archives() == {name: Path(path) for name, path in manifest.items()}

    Path(manifest[POSTGRES_IMAGE]).unlink()
    assert image_archives() is None, "an archive is gone"

    _build(cache, ("ghcr.io/pweza/pweza-core:0.0.1", POSTGRES_IMAGE, PAUSE_IMAGE))
    assert image_archives() is None, "built for another version of the project"

    (cache / "images.json").write_text("{not json")
    assert image_archives() is None


def _fake_ctr(directory: Path, exit_code: int) -> Path:
    ctr = directory / "ctr"
    ctr.write_text(f'#!/bin/sh\necho "$@" >> "{directory}/calls"\necho "boom" >&2\nexit {exit_code}\n')
    ctr.chmod(ctr.stat().st_mode | stat.S_IXUSR)
    return ctr


def test_import_runs_ctr_in_the_k8s_io_namespace(tmp_path: Path) -> None:
    manifest = _build(tmp_path / "images")
    ctr = _fake_ctr(tmp_path, 0)
    import_images(ctr, "/run/x/containerd.sock", {name: Path(path) for name, path in manifest.items()})
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == [f"--address /run/x/containerd.sock -n k8s.io images import {manifest[name]}" for name in IMAGES]


def test_a_failed_import_says_which_image(tmp_path: Path) -> None:
    manifest = _build(tmp_path / "images")
    ctr = _fake_ctr(tmp_path, 3)
    with pytest.raises(ImageImportError, match=r"importing ghcr.io/pweza/pweza-core:.* failed \(3\): boom"):
        import_images(ctr, "/run/x/containerd.sock", {name: Path(path) for name, path in manifest.items()})
