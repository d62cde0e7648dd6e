"""What the backend packages offer the rest of the code; their modules are theirs alone."""

from __future__ import annotations

import pweza.store.postgres
import pweza.store.sqlite


def test_the_backend_packages_export_only_what_others_use() -> None:
    assert set(pweza.store.sqlite.__all__) == {"SqliteStore", "open_store"}
    assert set(pweza.store.postgres.__all__) == {
        "CANCEL_CHANNEL",
        "DONE_CHANNEL",
        "DRAIN_CHANNEL",
        "FOLLOW_CHANNEL",
        "LINE_LIMIT",
        "PENDING_CHANNEL",
        "POOL_DEFAULTS",
        "REPLY_CHANNEL",
        "Listener",
        "PostgresStore",
        "ReplicaDatabase",
    }
