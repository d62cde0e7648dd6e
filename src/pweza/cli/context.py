"""Where the CLI finds the manager and its token: flags, then environment, then `pweza up`'s file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


def default_data_dir() -> Path:
    configured = os.environ.get("PWEZA_DATA_DIR")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "pweza"


@dataclass(frozen=True, slots=True)
class Context:
    url: str
    token: str | None
    grpc: str | None = None


def context_file(data_dir: Path) -> Path:
    return data_dir / "context.json"


def save_context(data_dir: Path, context: Context) -> Path:
    path = context_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The file holds an admin token: readable by its owner only, created that way.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": context.url, "token": context.token, "grpc": context.grpc}, handle)
    return path


def load_context(url: str | None, token: str | None, data_dir: Path | None = None) -> Context:
    saved: dict[str, str] = {}
    path = context_file(data_dir or default_data_dir())
    if path.exists():
        saved = json.loads(path.read_text())
    return Context(
        url=(url or os.environ.get("PWEZA_URL") or saved.get("url") or "http://127.0.0.1:8080").rstrip("/"),
        token=token or os.environ.get("PWEZA_TOKEN") or saved.get("token"),
        grpc=saved.get("grpc"),
    )
