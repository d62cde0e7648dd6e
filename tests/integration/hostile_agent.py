"""An agent that speaks the agent channel the way a hostile (or broken) one would.

It is a raw `grpc.aio` stub of `pweza.v1.AgentChannel` with none of `AgentWorker`'s manners:
it sends whatever hello it is told to (forged agent ids, another pool's token, any credits, any
`in_flight` list) and then whatever messages it likes (results, starts and heartbeats for tasks
it does not hold, credits beyond its slots). Whatever the manager sends back is kept for the
test to look at.

    async with HostileAgent(platform.grpc_address) as agent:
        welcome = await agent.hello(token=token, pool="echo", agent_id="mallory", free_slots=1)
        assignment = (await agent.assignments())[0]
        await agent.result(assignment.task_id, assignment.attempt, {"forged": True})

A refused hello raises `grpc.aio.AioRpcError` (its `code()` and `details()` say why).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Any

import grpc
import orjson

from pweza.v1 import agent_pb2 as pb
from pweza.v1 import agent_pb2_grpc as pb_grpc

_EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]  # missing from grpc-stubs
_END = object()


class HostileAgent:
    def __init__(self, address: str) -> None:
        self.address = address
        self._channel = grpc.aio.insecure_channel(address)
        self._outgoing: asyncio.Queue[pb.AgentMessage | object] = asyncio.Queue()
        self._call: grpc.aio.StreamStreamCall[pb.AgentMessage, pb.ManagerMessage] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._incoming: asyncio.Queue[pb.ManagerMessage | object] = asyncio.Queue()
        self.received: list[pb.ManagerMessage] = []
        self.ended: grpc.aio.AioRpcError | None = None

    async def __aenter__(self) -> HostileAgent:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    # -- the hello -----------------------------------------------------------------------
    async def hello(
        self,
        *,
        token: str | None,
        pool: str,
        namespace: str = "default",
        agent_id: str = "",
        free_slots: int | None = None,
        in_flight: Iterable[tuple[str, int]] = (),
        metadata_token: str | None = None,
        timeout: float = 10.0,
    ) -> pb.Welcome:
        """Open the stream with this hello; the welcome, or AioRpcError if refused."""
        assert self._call is None, "one stream per HostileAgent"
        hello = pb.Hello(
            namespace=namespace,
            pool=pool,
            token=token or "",
            agent_id=agent_id,
            hostname="hostile",
            pid=1,
            in_flight=[pb.AttemptRef(task_id=task_id, attempt=number) for task_id, number in in_flight],
        )
        if free_slots is not None:
            hello.free_slots = free_slots
        metadata = (("authorization", f"Bearer {metadata_token}"),) if metadata_token else None
        self._outgoing.put_nowait(pb.AgentMessage(hello=hello))
        stub = pb_grpc.AgentChannelStub(self._channel)
        self._call = stub.Connect(self._messages(), metadata=metadata)
        async with asyncio.timeout(timeout):
            first = await self._call.read()
        if first is _EOF:
            raise AssertionError("the manager ended the stream without a welcome or a status")
        assert isinstance(first, pb.ManagerMessage)
        assert first.HasField("welcome"), f"expected a welcome, got {first.WhichOneof('body')}"
        self._reader = asyncio.create_task(self._read())
        return first.welcome

    async def _messages(self) -> AsyncIterator[pb.AgentMessage]:
        while True:
            message = await self._outgoing.get()
            if message is _END:
                return
            assert isinstance(message, pb.AgentMessage)
            yield message

    async def _read(self) -> None:
        assert self._call is not None
        try:
            while True:
                message = await self._call.read()
                if message is _EOF:
                    break
                assert isinstance(message, pb.ManagerMessage)
                self.received.append(message)
                self._incoming.put_nowait(message)
        except grpc.aio.AioRpcError as error:
            self.ended = error
        finally:
            self._incoming.put_nowait(_END)

    # -- what it sends --------------------------------------------------------------------
    def send(self, message: pb.AgentMessage) -> None:
        self._outgoing.put_nowait(message)

    def result(
        self, task_id: str, attempt: int, output: Any = None, *, ok: bool = True, credit: int = 0, error: str = ""
    ) -> None:
        item = pb.TaskResult(task_id=task_id, attempt=attempt, ok=ok)
        if ok:
            item.output_json = orjson.dumps(output)
        else:
            item.error.CopyFrom(pb.ErrorInfo(type="HandlerError", message=error or "failed", retryable=False))
        self.send(pb.AgentMessage(results=pb.Results(results=[item], credit=credit)))

    def started(self, task_id: str, attempt: int) -> None:
        self.send(pb.AgentMessage(started=pb.Started(attempts=[pb.AttemptRef(task_id=task_id, attempt=attempt)])))

    def heartbeat(self, refs: Iterable[tuple[str, int]]) -> None:
        attempts = [pb.AttemptRef(task_id=task_id, attempt=number) for task_id, number in refs]
        self.send(pb.AgentMessage(heartbeat=pb.Heartbeat(attempts=attempts)))

    def credit(self, slots: int) -> None:
        self.send(pb.AgentMessage(credit=pb.Credit(slots=slots)))

    # -- what it gets -------------------------------------------------------------------
    async def next_message(self, timeout: float = 10.0) -> pb.ManagerMessage | None:
        """The manager's next message; None if the stream ended first."""
        async with asyncio.timeout(timeout):
            message = await self._incoming.get()
        if message is _END:
            self._incoming.put_nowait(_END)
            return None
        assert isinstance(message, pb.ManagerMessage)
        return message

    async def assignments(self, timeout: float = 10.0) -> list[pb.Assignment]:
        """The items of the next Assignments message (other messages are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.next_message(timeout)
                if message is None:
                    raise AssertionError(f"the stream ended while waiting for an assignment: {self.ended}")
                if message.HasField("assignments"):
                    return list(message.assignments.items)

    async def quiet_for(self, seconds: float) -> list[pb.ManagerMessage]:
        """Whatever the manager sends within `seconds` (a test expecting nothing checks it is empty)."""
        got: list[pb.ManagerMessage] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    message = await self.next_message(seconds)
                    if message is None:
                        break
                    got.append(message)
        return got

    def assigned(self) -> list[pb.Assignment]:
        """Every assignment received so far."""
        return [
            item for message in self.received if message.HasField("assignments") for item in message.assignments.items
        ]

    async def close(self) -> None:
        """Half-close the stream, then cut it; the manager sees the agent leave."""
        self._outgoing.put_nowait(_END)
        if self._call is not None:
            if self._reader is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._reader), 2.0)
            self._call.cancel()
            if self._reader is not None:
                self._reader.cancel()
                await asyncio.gather(self._reader, return_exceptions=True)
        await self._channel.close(None)
