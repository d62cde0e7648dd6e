"""The worker process of ExpressionSandbox: evaluates one expression at a time, framed on stdio.

Each request is a pickled (expression, variables); each answer a pickled (failed, value or
message). The parent kills this process when an answer is late, so nothing here needs to
watch the clock. Memory is capped, so a runaway expression ends this process, not the host.
"""

from __future__ import annotations

import contextlib
import pickle
import struct
import sys
from typing import BinaryIO

from pweza.domain import expressions

MEMORY_LIMIT_BYTES = 2 << 30
_FRAME = struct.Struct("!I")


def _limit_memory() -> None:
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource  # not on Windows

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


def _read(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    expressions.preload()  # before "ready": the first expression's deadline must not pay for it
    answers.write(b"R")  # ready: the parent's deadline counts from here, not from our start-up
    answers.flush()
    while (header := _read(requests, _FRAME.size)) is not None:
        body = _read(requests, _FRAME.unpack(header)[0])
        if body is None:
            return
        source, variables = pickle.loads(body)
        try:
            answer: tuple[bool, object] = (False, expressions.evaluate(source, variables))
        except expressions.ExpressionError as error:
            answer = (True, str(error))
        reply = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        answers.write(_FRAME.pack(len(reply)) + reply)
        answers.flush()


if __name__ == "__main__":
    _limit_memory()
    serve(sys.stdin.buffer, sys.stdout.buffer)
