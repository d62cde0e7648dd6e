"""What the manager refuses on an agent stream, and how, so one bad payload costs one task.

A payload that is not JSON or is above the payload limit fails that one attempt (or that one
delegation) with a typed, non-retryable error; the stream and the other tasks on it go on. A
frame that is not protobuf at all means the stream itself is corrupt: it is ended with
INVALID_ARGUMENT and a message saying so, never a Python exception's name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import grpc
import orjson
import structlog
from google.protobuf.message import DecodeError

from pweza.domain.limits import too_large
from pweza.domain.tasks import ErrorType, TaskError
from pweza.v1 import agent_pb2 as pb

log = structlog.get_logger(__name__)

CONNECT_METHOD = "/pweza.v1.AgentChannel/Connect"
Context = grpc.aio.ServicerContext[Any, Any]
if TYPE_CHECKING:  # grpc's classes are not generic at run time
    Handler = grpc.RpcMethodHandler[Any, Any]
    _Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]
    # What an aio stream-stream behaviour is (grpc-stubs only describe the synchronous one).
    _StreamBehaviour = Callable[[AsyncIterator[pb.AgentMessage], Context], AsyncIterator[Any]]


def read_output(result: pb.TaskResult, limit: int) -> tuple[Any, TaskError | None]:
    """A successful result's output, or why the manager refuses it."""
    return _read_json(
        result.output_json, limit, "the task output", ErrorType.OUTPUT_TOO_LARGE, ErrorType.INVALID_OUTPUT
    )


def read_delegate_input(request: pb.DelegateRequest, limit: int) -> tuple[Any, TaskError | None]:
    """A delegation's child input, or why the manager refuses it."""
    return _read_json(
        request.input_json, limit, "the delegated input", ErrorType.INPUT_TOO_LARGE, ErrorType.INVALID_INPUT
    )


def _read_json(
    data: bytes, limit: int, what: str, too_large_type: str, invalid_type: str
) -> tuple[Any, TaskError | None]:
    size = len(data)
    if size > limit:
        return None, TaskError(too_large_type, too_large(what, size, limit), False)
    if not data:
        return None, None
    try:
        return orjson.loads(data), None
    except orjson.JSONDecodeError as problem:
        return None, TaskError(invalid_type, f"{what} ({size} bytes) is not JSON: {problem}", False)


class FrameGuard(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Decodes the agent stream's frames itself, so an undecodable one ends the stream cleanly.

    Left to gRPC, a frame that is not an AgentMessage raises inside the servicer: the first frame
    is answered UNKNOWN with the exception's class name, a later one silently ends the reader.
    """

    async def intercept_service(
        self, continuation: _Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler_call_details.method != CONNECT_METHOD or handler.stream_stream is None:
            return handler
        connect = cast("_StreamBehaviour", handler.stream_stream)

        async def guarded(frames: AsyncIterator[bytes], context: Context) -> AsyncIterator[Any]:
            async for message in connect(_decoded(frames, context), context):
                yield message

        return grpc.stream_stream_rpc_method_handler(
            guarded, request_deserializer=None, response_serializer=handler.response_serializer
        )


async def _decoded(frames: AsyncIterator[bytes], context: Context) -> AsyncIterator[pb.AgentMessage]:
    number, agent = 0, ""
    async for frame in frames:
        number += 1
        try:
            message = pb.AgentMessage.FromString(frame)
        except DecodeError:
            message = None
        if message is None:
            size = len(frame)
            peer = context.peer()
            log.warning("undecodable agent frame: stream ended", agent=agent, frame=number, size=size, peer=peer)
            detail = f"frame {number} of the stream ({size} bytes) is not a valid pweza.v1.AgentMessage"
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, detail)
        if number == 1 and message.HasField("hello"):
            agent = message.hello.agent_id  # for the log above; the servicer checks the hello itself
        yield message
