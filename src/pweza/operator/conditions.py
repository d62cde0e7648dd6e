"""Status conditions in the Kubernetes style, keeping transition times stable."""

from __future__ import annotations

import datetime as dt
from typing import Any


def condition(type_: str, ok: bool, reason: str, message: str, generation: int | None) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation or 0,
    }


def merge(previous: list[dict[str, Any]] | None, current: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stamp lastTransitionTime, keeping the old one when a condition's status did not change."""
    before = {item.get("type"): item for item in previous or []}
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    merged = []
    for item in current:
        old = before.get(item["type"])
        stamp = old.get("lastTransitionTime") if old and old.get("status") == item["status"] else None
        merged.append({**item, "lastTransitionTime": stamp or now})
    return merged


def differs(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether writing `new` would change the status, transition times aside."""

    def strip(status: dict[str, Any]) -> dict[str, Any]:
        data = dict(status)
        data["conditions"] = [
            {k: v for k, v in item.items() if k != "lastTransitionTime"} for item in data.get("conditions") or []
        ]
        return data

    return strip({k: old.get(k) for k in new}) != strip(new)
