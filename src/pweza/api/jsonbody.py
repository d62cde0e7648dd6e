"""Refuse JSON bodies the manager could parse but not store or send back.

The body is parsed by Python's json module, which accepts what the store's encoder (orjson)
refuses or quietly changes: integers beyond 64 bits (a 500 when stored), NaN and Infinity
(stored as null), unpaired surrogates in strings and very deep nesting (a 500 again). Such a
body is refused with a 422 that names the field.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from pweza.domain.errors import InvalidInput
from pweza.domain.kinds import format_location

# How deep a body may nest. orjson writes at most 254 levels and a body is stored inside a few
# levels of its own (an event's data, a workflow's variables), so this leaves room for those.
# Deeper than manifests may nest (100, pweza.domain.safe_yaml) and safely under the encoder's 254.
MAX_DEPTH = 200
_ENCODER_DEPTH = 254
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


class _Refused(ValueError):
    """Raised from inside the parser to stop at the first number JSON cannot carry."""


def _refuse_constant(_: str) -> float:
    raise _Refused()


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e400 parses to infinity
        raise _Refused()
    return number


def check_body(body: bytes) -> None:
    """InvalidInput naming the first field the store could not keep; nothing for a good body, or
    for one with a JSON syntax error (the route's own parsing names its position)."""
    try:
        value = _parse(body, strict=True)
        # One pass in C checks big integers, surrogates and depth; the slow walk below only runs
        # when it fails. The value is wrapped so that the encoder's limit falls at MAX_DEPTH.
        orjson.dumps(_nested(value, _ENCODER_DEPTH - MAX_DEPTH))
        return
    except (_Refused, orjson.JSONEncodeError):
        pass
    except json.JSONDecodeError:
        return
    try:
        value = _parse(body, strict=False)  # without the hooks that stopped the first parse
    except json.JSONDecodeError:
        return
    found = first_unstorable(value)
    if found is not None:
        path, reason = found
        where = format_location(path) or "body"
        raise InvalidInput(f"{where}: {reason}", field=where)


def _parse(body: bytes, *, strict: bool) -> Any:
    """The body parsed as the route will parse it; strict, it stops at NaN, Infinity and overflow.
    The parser's own failures other than syntax errors become messages a client can act on."""
    try:
        if strict:
            return json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
        return json.loads(body)
    except (_Refused, json.JSONDecodeError):
        raise
    except RecursionError:
        raise InvalidInput(f"body: nested deeper than {MAX_DEPTH} levels", field="body") from None
    except UnicodeDecodeError:
        raise InvalidInput("body: not JSON in UTF-8 (or UTF-16/32 with a byte order mark)", field="body") from None
    except ValueError:  # the only other one: an integer of more digits than Python converts
        detail = "body: an integer has too many digits; integers must lie in [-2^63, 2^64-1]"
        raise InvalidInput(detail, field="body") from None


def _nested(value: Any, levels: int) -> Any:
    for _ in range(levels):
        value = [value]
    return value


def first_unstorable(value: Any) -> tuple[tuple[int | str, ...], str] | None:
    """The path of the first value JSON cannot carry and why, walking without recursion."""
    stack: list[tuple[Any, tuple[int | str, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if len(path) > MAX_DEPTH:
            return path, f"nested deeper than {MAX_DEPTH} levels"
        if isinstance(item, bool):
            continue
        if isinstance(item, int) and not _INT_MIN <= item <= _INT_MAX:
            return path, f"the integer ({item.bit_length()} bits) is out of range; integers must lie in [-2^63, 2^64-1]"
        if isinstance(item, float) and not math.isfinite(item):
            return path, "NaN and Infinity are not JSON numbers; send a finite number or null"
        if isinstance(item, str) and not _valid_unicode(item):
            return path, "the string has an unpaired surrogate (\\ud800-\\udfff); strings must be valid Unicode"
        if isinstance(item, dict):
            for key in reversed(list(item)):
                if not _valid_unicode(key):
                    return path, "a key has an unpaired surrogate; keys must be valid Unicode"
                stack.append((item[key], (*path, key)))
        elif isinstance(item, list):
            stack.extend((element, (*path, index)) for index, element in reversed(list(enumerate(item))))
    return None


def _valid_unicode(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
