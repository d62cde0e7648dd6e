"""The one payload limit (Settings.max_payload_bytes): task inputs, run inputs, step inputs."""

from __future__ import annotations

from typing import Any

from pweza.domain.errors import PayloadTooLarge
from pweza.store.codec import dumps


def check_payload(value: Any, field: str, limit: int) -> None:
    """PayloadTooLarge naming the field, its size and the limit when `value` encodes to more than
    `limit` bytes of JSON (as it is stored and sent to agents)."""
    size = len(dumps(value).encode())
    if size > limit:
        raise PayloadTooLarge(f"{field} is {size} bytes; the limit is {limit}", field=field)
