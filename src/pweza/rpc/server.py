"""The agent channel over gRPC: one bidirectional stream per agent process.

Each stream gets a send queue; the dispatcher pushes messages into it through a
`StreamLink` and a writer drains it, so the dispatcher never waits on a slow network.
"""

from __future__ import annotations

import asyncio
import math
import re
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any, NoReturn

import grpc
import orjson
import structlog
from grpc_health.v1 import health, health_pb2

from pweza.domain.errors import Conflict, PwezaError
from pweza.domain.limits import cut_error_text, cut_error_type, grpc_message_limit
from pweza.domain.roles import Permission
from pweza.domain.tasks import ErrorType, TaskError
from pweza.manager.journal import JournalRefused
from pweza.manager.service import Manager
from pweza.manager.sessions import AgentSession, AssignmentMessage, DelegatedResult
from pweza.rpc.guards import FrameGuard, read_delegate_input, read_output
from pweza.rpc.introspection import add_health, add_reflection
from pweza.v1 import agent_pb2 as pb
from pweza.v1 import agent_pb2_grpc as pb_grpc

log = structlog.get_logger(__name__)
_CLOSE = object()
_ACKS = object()  # in a link's queue: send the acknowledgements gathered so far, in one message
Context = grpc.aio.ServicerContext[pb.AgentMessage, pb.ManagerMessage]
# What an agent id may be (it is stored with each attempt, in a column of 64 characters).
_AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class StreamLink:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[pb.ManagerMessage | object] = asyncio.Queue()
        # Bytes of assignments per message: a batch of large inputs leaves as several messages,
        # each within the agent's message limit (set from the manager's max_payload_bytes).
        self.batch_bytes = 1 << 20
        self._acks: list[pb.AttemptRef] = []

    def send_assignments(self, items: list[AssignmentMessage]) -> None:
        batch: list[pb.Assignment] = []
        size = 0
        for item in items:
            assignment = pb.Assignment(
                task_id=item.task_id,
                attempt=item.attempt,
                input_json=orjson.dumps(item.input),
                timeout_seconds=item.timeout_seconds,
                idempotency_key=item.idempotency_key,
                labels=item.labels,
            )
            size += assignment.ByteSize()
            if batch and size > self.batch_bytes:
                self.queue.put_nowait(pb.ManagerMessage(assignments=pb.Assignments(items=batch)))
                batch, size = [], assignment.ByteSize()
            batch.append(assignment)
        if batch:
            self.queue.put_nowait(pb.ManagerMessage(assignments=pb.Assignments(items=batch)))

    def send_cancel(self, task_ids: list[str], reason: str) -> None:
        self.queue.put_nowait(pb.ManagerMessage(cancel=pb.Cancel(task_ids=task_ids, reason=reason)))

    def send_drain(self, grace_seconds: float) -> None:
        self.queue.put_nowait(pb.ManagerMessage(drain=pb.Drain(grace_seconds=grace_seconds)))

    def send_delegate_result(self, request_id: str, result: DelegatedResult) -> None:
        error = None
        if result.error is not None:
            error = pb.ErrorInfo(
                type=str(result.error.get("type", "")),
                message=str(result.error.get("message", "")),
                retryable=bool(result.error.get("retryable", False)),
            )
        message = pb.DelegateResult(
            request_id=request_id,
            task_id=result.task_id,
            ok=result.ok,
            output_json=orjson.dumps(result.output) if result.ok else b"",
            error=error,
        )
        self.queue.put_nowait(pb.ManagerMessage(delegate_result=message))

    def send_journal_reply(
        self, request_id: str, refused: JournalRefused | None, records: list[Any] | None = None
    ) -> None:
        reply = pb.JournalReply(
            request_id=request_id,
            ok=refused is None,
            error="" if refused is None else str(refused),
            error_type="" if refused is None else refused.error_type,
            records_json=orjson.dumps(records) if records is not None else b"",
        )
        self.queue.put_nowait(pb.ManagerMessage(journal_reply=reply))

    def send_results_ack(self, attempts: list[tuple[str, int]]) -> None:
        # Every write's acknowledgements arrive in one loop tick: they leave as one message.
        if not self._acks:
            self.queue.put_nowait(_ACKS)
        self._acks.extend(pb.AttemptRef(task_id=task_id, attempt=number) for task_id, number in attempts)

    def message(self, item: object) -> pb.ManagerMessage:
        """The message a queue item stands for."""
        if item is _ACKS:
            acks, self._acks = self._acks, []
            return pb.ManagerMessage(results_ack=pb.ResultsAck(attempts=acks))
        assert isinstance(item, pb.ManagerMessage)
        return item

    def close(self) -> None:
        self.queue.put_nowait(_CLOSE)


def _refs(refs: list[pb.AttemptRef]) -> list[tuple[str, int]]:
    return [(ref.task_id, ref.attempt) for ref in refs]


class AgentChannelServicer(pb_grpc.AgentChannelServicer):
    def __init__(self, manager: Manager) -> None:
        self._manager = manager

    async def Connect(  # noqa: N802 - the name is the RPC's
        self, request_iterator: AsyncIterator[pb.AgentMessage], context: Context
    ) -> AsyncIterator[pb.ManagerMessage]:
        manager = self._manager
        try:
            first = await asyncio.wait_for(anext(aiter(request_iterator)), timeout=10.0)
        except (TimeoutError, StopAsyncIteration):
            await _refuse(context, None, grpc.StatusCode.INVALID_ARGUMENT, "the first message must be hello")
        if not first.HasField("hello"):
            await _refuse(context, None, grpc.StatusCode.INVALID_ARGUMENT, "the first message must be hello")
        hello = first.hello
        session, template_json = await self._open_session(hello, context)
        link = session.link
        assert isinstance(link, StreamLink)
        link.batch_bytes = manager.settings.max_payload_bytes
        try:
            # No await since the checks in _open_session: two hellos with one agent id cannot both pass.
            manager.agent_events.connect(session, _refs(list(hello.in_flight)))
        except Conflict as error:
            await _refuse(context, hello, grpc.StatusCode.ALREADY_EXISTS, error.detail)
        log.info("agent connected", agent=session.id, pool=session.pool, slots=session.slots)
        reader: asyncio.Task[None] | None = None
        try:
            yield pb.ManagerMessage(
                welcome=pb.Welcome(
                    agent_id=session.id,
                    template_json=template_json,
                    heartbeat_interval_seconds=manager.settings.heartbeat_seconds,
                    lease_seconds=manager.settings.lease_seconds,
                    max_payload_bytes=manager.settings.max_payload_bytes,
                    acknowledges_results=True,
                )
            )
            reader = asyncio.create_task(self._read(session, request_iterator))
            reader.add_done_callback(lambda _: link.close())
            while True:
                item = await link.queue.get()
                if item is _CLOSE:
                    break
                yield link.message(item)
            failure = None if reader.cancelled() or not reader.done() else reader.exception()
            if failure is not None:
                # Anything the reader did not expect ends this stream loudly, never as a silent OK:
                # the agent reconnects and its leases are kept meanwhile.
                log.error("agent stream failed", agent=session.id, pool=session.pool, exc_info=failure)
                unavailable = isinstance(failure, PwezaError) and failure.status == 503
                code = grpc.StatusCode.UNAVAILABLE if unavailable else grpc.StatusCode.INTERNAL
                await context.abort(code, "the manager could not process a message of this stream; reconnect")
        finally:
            if reader is not None:
                reader.cancel()
            manager.agent_events.disconnect(session.id, session)
            log.info("agent disconnected", agent=session.id, pool=session.pool)

    async def _open_session(self, hello: pb.Hello, context: Context) -> tuple[AgentSession, bytes]:
        """Check the hello (token, its pool, agent id, slots) and build the session; the template
        spec as JSON comes with it, for the welcome."""
        manager = self._manager
        token = hello.token or _metadata_token(context)
        namespace = hello.namespace or "default"
        try:
            principal = await manager.authenticate(token)
            principal.require(Permission.AGENT_CHANNEL)
            # An agent token serves only its pool (PERMISSION_DENIED naming the pool it is for).
            principal.require_pool(namespace, hello.pool)
        except PwezaError as error:
            denied = grpc.StatusCode.UNAUTHENTICATED if error.status == 401 else grpc.StatusCode.PERMISSION_DENIED
            await _refuse(context, hello, _status(error, denied), error.detail)
        if hello.agent_id and not _AGENT_ID.fullmatch(hello.agent_id):
            await _refuse(
                context,
                hello,
                grpc.StatusCode.INVALID_ARGUMENT,
                "agent_id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            )
        try:
            policy, template_spec = await manager.agent_pool(namespace, hello.pool)
        except PwezaError as error:
            await _refuse(context, hello, _status(error, grpc.StatusCode.FAILED_PRECONDITION), error.detail)
        concurrency = policy.template.concurrency
        if hello.HasField("free_slots") and hello.free_slots > concurrency:
            await _refuse(
                context,
                hello,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"free_slots is {hello.free_slots}; pool {namespace}/{hello.pool} allows 0 to {concurrency} "
                f"(template {policy.template_name} has concurrency {concurrency})",
            )
        # Unset: the template's concurrency; 0: no slots yet (the agent is sent nothing).
        slots = hello.free_slots if hello.HasField("free_slots") else concurrency
        session = AgentSession(
            id=hello.agent_id or uuid.uuid4().hex[:12],
            namespace=namespace,
            pool=hello.pool,
            template=policy.template_name,
            capabilities=list(hello.capabilities) or list(policy.template.capabilities),
            slots=slots,
            max_slots=concurrency,
            link=StreamLink(),
            hostname=hello.hostname,
            pid=hello.pid,
            token_id=principal.token_id,
        )
        return session, orjson.dumps(template_spec)

    async def _read(self, session: AgentSession, messages: AsyncIterator[pb.AgentMessage]) -> None:
        dispatcher = self._manager.agent_events
        coordination = self._manager.metrics.coordination
        limit = self._manager.settings.max_payload_bytes
        journal = self._manager.journal
        # Tool approvals wait for a person, maybe for hours, and model slots for room: each waits
        # in a task of its own, so the stream goes on being read; they end with it (the agent
        # asks again on its next one).
        waiting: set[asyncio.Task[None]] = set()
        try:
            async for message in messages:
                coordination.inc()
                body = message.WhichOneof("body")
                if body == "results":
                    for result in message.results.results:
                        output, error = None, None
                        if not result.ok:
                            info = result.error
                            kind = cut_error_type(info.type) or ErrorType.HANDLER
                            error = TaskError(kind, cut_error_text(info.message), info.retryable)
                        else:
                            output, error = read_output(result, limit)
                            if error is not None:
                                log.warning(
                                    "agent result refused", agent=session.id, task_id=result.task_id,
                                    attempt=result.attempt, error=error.type, reason=error.message,
                                )  # fmt: skip
                        dispatcher.on_result(session, result.task_id, result.attempt, output, error)
                    dispatcher.on_credit(session, message.results.credit)
                elif body == "started":
                    # NaN or infinity would be stored as the start time: take it as unknown ("now").
                    starts = [
                        (ref.task_id, ref.attempt, ref.at if math.isfinite(ref.at) else 0.0)
                        for ref in message.started.attempts
                    ]
                    dispatcher.on_started(session, starts)
                elif body == "heartbeat":
                    dispatcher.on_heartbeat(session, _refs(list(message.heartbeat.attempts)))
                elif body == "credit":
                    dispatcher.on_credit(session, message.credit.slots)
                elif body == "ready":
                    dispatcher.on_ready(session, message.ready.slots, cut_error_text(message.ready.error))
                elif body == "delegate":
                    request = message.delegate
                    payload, problem = read_delegate_input(request, limit)
                    if problem is not None:
                        log.warning(
                            "delegation refused", agent=session.id, parent_task_id=request.parent_task_id,
                            error=problem.type, reason=problem.message,
                        )  # fmt: skip
                        refusal = DelegatedResult("", False, error=problem.to_dict())
                        session.link.send_delegate_result(request.request_id, refusal)
                        continue
                    await self._manager.delegate(
                        session.id, request.request_id, request.parent_task_id, request.pool, payload, request.key
                    )
                elif body == "journal_append":
                    write = message.journal_append
                    stored = journal.append(session, write.task_id, write.attempt, write.record_json)
                    await self._answer_journal(session, write.request_id, stored, task_id=write.task_id)
                elif body == "journal_load":
                    read = message.journal_load
                    records = journal.load(session, read.task_id, read.attempt)
                    await self._answer_journal(session, read.request_id, records)
                elif body == "call_permit":
                    ask = message.call_permit
                    permit = journal.permit(session, ask.task_id, ask.attempt, ask.max_tokens)
                    await self._answer_journal(session, ask.request_id, permit)
                elif body == "model_stream":
                    piece = message.model_stream
                    self._manager.live_replies.publish(
                        session, piece.task_id, piece.attempt, piece.call, piece.text, piece.tool, piece.arguments
                    )
                elif body == "tool_approval":
                    wait = message.tool_approval
                    decision = self._manager.tool_approvals.request(
                        session, wait.task_id, wait.attempt, wait.key, wait.tool, wait.arguments_json
                    )
                    waiter = asyncio.create_task(self._answer_journal(session, wait.request_id, decision))
                    waiting.add(waiter)
                    waiter.add_done_callback(waiting.discard)
                elif body == "model_slot":
                    ask_room = message.model_slot
                    room = self._manager.model_slots.take(session, ask_room.model, ask_room.wait_seconds)
                    # It may wait for room: the stream is read on meanwhile.
                    waiter = asyncio.create_task(self._answer_journal(session, ask_room.request_id, room))
                    waiting.add(waiter)
                    waiter.add_done_callback(waiting.discard)
                elif body == "model_slot_release":
                    await self._manager.model_slots.release(session, message.model_slot_release.lease)
                else:
                    log.warning("unexpected agent message", agent=session.id, kind=body)
        except (grpc.aio.AioRpcError, grpc.aio.AbortError, asyncio.CancelledError):
            pass  # the stream ended (an abort was logged by whoever aborted it)
        finally:
            for waiter in waiting:
                waiter.cancel()
            await self._manager.model_slots.release_session(session)

    async def _answer_journal(
        self, session: AgentSession, request_id: str, work: Awaitable[list[Any] | None], *, task_id: str = ""
    ) -> None:
        """Do one journal request of `session` and answer it: the result, or why it was refused
        (a refused record, named by `task_id`, is logged too)."""
        link = session.link
        assert isinstance(link, StreamLink)
        try:
            records = await work
        except JournalRefused as refused:
            if task_id:
                log.warning("journal record refused", agent=session.id, task_id=task_id, reason=str(refused))
            link.send_journal_reply(request_id, refused)
            return
        link.send_journal_reply(request_id, None, records)


async def _refuse(context: Context, hello: pb.Hello | None, code: grpc.StatusCode, detail: str) -> NoReturn:
    """End the stream with `code`, after one log line saying which agent was refused and why
    (never its token)."""
    log.warning(
        "agent refused",
        code=code.name,
        reason=detail,
        agent=(hello.agent_id or None) if hello is not None else None,
        pool=f"{hello.namespace or 'default'}/{hello.pool}" if hello is not None else None,
        hostname=(hello.hostname or None) if hello is not None else None,
        peer=context.peer(),
    )
    await context.abort(code, detail)
    raise AssertionError("abort returned")  # grpc's abort always raises


def _metadata_token(context: Context) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            return token if scheme.lower() == "bearer" else None
    return None


async def start_grpc_server(manager: Manager, address: str) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(
        interceptors=[FrameGuard()],
        options=[
            ("grpc.max_receive_message_length", grpc_message_limit(manager.settings.max_payload_bytes)),
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ],
    )
    pb_grpc.add_AgentChannelServicer_to_server(AgentChannelServicer(manager), server)
    health_servicer = add_health(server)
    names = (pb.DESCRIPTOR.services_by_name["AgentChannel"].full_name, health.SERVICE_NAME)
    add_reflection(server, names)
    settings = manager.settings
    if settings.tls_enabled:
        assert settings.tls_cert_file is not None and settings.tls_key_file is not None
        credentials = grpc.ssl_server_credentials(
            [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())]
        )
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set(names[0], health_pb2.HealthCheckResponse.SERVING)
    return server, port


def _status(error: PwezaError, otherwise: grpc.StatusCode) -> grpc.StatusCode:
    """UNAVAILABLE when the manager cannot reach its database (the agent tries again), else `otherwise`."""
    return grpc.StatusCode.UNAVAILABLE if error.status == 503 else otherwise
