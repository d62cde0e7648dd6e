"""A hand-driven agent stream, for probing the agent channel as a buggy or hostile agent would.

Frames go out exactly as given: a message is serialized, bytes are sent as they are (so a
test can send a frame that is not protobuf). Every read is bounded in time.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

import grpc

from pweza.v1 import agent_pb2 as pb

CONNECT = "/pweza.v1.AgentChannel/Connect"


def _frame(message: pb.AgentMessage | bytes) -> bytes:
    return message if isinstance(message, bytes) else message.SerializeToString()


class RawAgent:
    def __init__(self, address: str, token: str, pool: str, *, slots: int = 4) -> None:
        self.hello = pb.Hello(pool=pool, token=token, free_slots=slots, agent_id="raw-agent")
        self._channel = grpc.aio.insecure_channel(address)
        connect = self._channel.stream_stream(
            CONNECT, request_serializer=_frame, response_deserializer=pb.ManagerMessage.FromString
        )
        self.call = connect()

    async def __aenter__(self) -> RawAgent:
        return self

    async def __aexit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.call.cancel()
        await self._channel.close(None)

    async def send(self, message: pb.AgentMessage | bytes) -> None:
        await self.call.write(message)  # type: ignore[arg-type]  # bytes pass through _frame

    async def connect(self, *, in_flight: list[pb.AttemptRef] | None = None) -> pb.Welcome:
        """Send the hello and return the welcome."""
        hello = pb.Hello()
        hello.CopyFrom(self.hello)
        hello.in_flight.extend(in_flight or [])
        await self.send(pb.AgentMessage(hello=hello))
        first = await self.read()
        assert first.HasField("welcome"), first
        return first.welcome

    async def read(self, timeout: float = 10.0) -> pb.ManagerMessage:
        message = await asyncio.wait_for(self.call.read(), timeout)
        assert isinstance(message, pb.ManagerMessage), f"the stream ended: {await self.status()}"
        return message

    async def assignments(self, count: int, timeout: float = 10.0) -> list[pb.Assignment]:
        """Read until `count` assignments came (other messages are skipped)."""
        items: list[pb.Assignment] = []
        async with asyncio.timeout(timeout):
            while len(items) < count:
                message = await self.read(timeout)
                if message.HasField("assignments"):
                    items.extend(message.assignments.items)
        return items

    async def result(self, item: pb.Assignment, output_json: bytes, *, credit: int = 1) -> None:
        result = pb.TaskResult(task_id=item.task_id, attempt=item.attempt, ok=True, output_json=output_json)
        await self.send(pb.AgentMessage(results=pb.Results(results=[result], credit=credit)))

    async def status(self, timeout: float = 10.0) -> tuple[grpc.StatusCode, str]:
        """How the manager ended the stream: its status code and details."""
        code = await asyncio.wait_for(self.call.code(), timeout)
        return code, await self.call.details()
