"""The embedded SQLite backend (the default), and `open_store`, which picks a backend from a URL."""

from __future__ import annotations

from pweza.store.sqlite.store import SqliteStore, open_store

__all__ = ["SqliteStore", "open_store"]
