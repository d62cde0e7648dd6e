"""The one payload limit (the manager's `max_payload_bytes`) and what follows from it on the agent channel.

The limit bounds each payload (a task's input, its output, a delegated child's input, a run's
inputs); gRPC's message limits are derived from it here so both ends of the stream agree on them.
"""

from __future__ import annotations

from typing import Any

import orjson

from pweza.domain.errors import PayloadTooLarge
from pweza.domain.tasks import ErrorType, TaskError

# What a message carries besides its payloads: ids, labels, error text, protobuf framing.
FRAMING_HEADROOM = 64 * 1024
# Error text beyond this is cut (by the agent before sending, by the manager before storing),
# so a failed result fits the framing headroom and an agent cannot store megabytes as a message.
MAX_ERROR_CHARS = 8 * 1024
# An error type is a name (`HandlerError`, `ValueError`): one longer than this is cut, so it
# stays a short label in the API, the logs and metrics.
MAX_ERROR_TYPE_CHARS = 128


def grpc_message_limit(payload_limit: int) -> int:
    """The largest agent-channel message either end accepts.

    Two payloads' worth: an agent that does not check its outputs (an older one) can send one
    somewhat over the limit and the manager still receives it and fails that one attempt with a
    clear error, instead of the transport cutting the whole stream and every task on it.
    """
    return 2 * payload_limit + FRAMING_HEADROOM


def cut_error_text(text: str) -> str:
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return f"{text[:MAX_ERROR_CHARS]}... ({len(text)} characters, cut)"


def cut_error_type(name: str) -> str:
    return name[:MAX_ERROR_TYPE_CHARS]


def too_large(what: str, size: int, limit: int) -> str:
    return f"{what} is {size} bytes; the limit is {limit} bytes (max_payload_bytes)"


def check_payload(value: Any, field: str, limit: int) -> None:
    """PayloadTooLarge naming the field, its size and the limit when `value` encodes to more than
    `limit` bytes of JSON, as it is stored and sent to agents (not as a client happened to spell it)."""
    size = len(orjson.dumps(value))
    if size > limit:
        raise PayloadTooLarge(too_large(field, size, limit), field=field)


def output_too_large(size: int, limit: int) -> TaskError:
    return TaskError(ErrorType.OUTPUT_TOO_LARGE, too_large("the task output", size, limit), False)
