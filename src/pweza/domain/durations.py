"""Kubernetes-style duration strings ("250ms", "30s", "5m", "1h30m")."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Return the duration in seconds, or raise ValueError naming what is allowed."""
    stripped = text.strip()
    pos = 0
    total = 0.0
    for match in _PART.finditer(stripped):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(stripped):
        raise ValueError(f"{text!r} is not a duration; use a number with a unit ms, s, m or h, e.g. '30s' or '1m30s'")
    return total


def _check(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[str, AfterValidator(_check)]


_TTL_PART = re.compile(r"(\d+(?:\.\d+)?)(s|m|h|d)")
_TTL_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
NEVER = "never"
# What a token gets when its creator names no lifetime: one that never ends must be asked for.
DEFAULT_TOKEN_TTL = "90d"


def parse_ttl(text: str) -> float | None:
    """A token's lifetime ("30d", "12h", "1d12h") in seconds, or None for "never"; ValueError
    names what is allowed (a lifetime of zero is refused: the token would never work)."""
    stripped = text.strip().lower()
    if stripped == NEVER:
        return None
    pos = 0
    total = 0.0
    for match in _TTL_PART.finditer(stripped):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _TTL_UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(stripped) or total <= 0:
        raise ValueError(
            f"{text!r} is not a token lifetime; use a number with a unit s, m, h or d (e.g. '30d', '12h') or 'never'"
        )
    return total
