"""The agent process's connection to the manager: one bidirectional stream, kept alive.

The stream may drop and come back any number of times; the `TaskRunner` and its attempts
live on across it, and a new Hello lists them as `in_flight` so the manager keeps their
leases. Only a refusal (bad token, unknown pool) ends the agent with `AgentRejected`.

Given several manager replicas (`HOST:PORT,HOST:PORT`), the agent dials one and moves to the next
whenever a stream fails or cannot be opened (see `pweza.agent.failover`); the Hello it sends the
new replica lists the same in-flight attempts, so that replica adopts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import uuid
from pathlib import Path

import grpc
import orjson
import structlog

from pweza.agent.delegating import DelegationClient
from pweza.agent.failover import ManagerRotation, parse_manager_addresses
from pweza.agent.journaling import JournalClient
from pweza.agent.outbox import Outbox
from pweza.agent.running import TaskRunner
from pweza.agent.runtimes import AgentRuntime, build_runtime
from pweza.agent.template import TemplateError, read_template
from pweza.domain.limits import grpc_message_limit
from pweza.domain.reconnecting import AGENT_RECONNECT_MAX_SECONDS
from pweza.domain.tasks import ErrorType, TaskError
from pweza.v1 import agent_pb2 as pb
from pweza.v1 import agent_pb2_grpc as pb_grpc

log = structlog.get_logger(__name__)

# Retrying these cannot help: the token, the pool or the protocol itself is wrong.
_REJECTED = frozenset(
    {
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)
_BACKOFF_START = 0.1
_BACKOFF_MAX = AGENT_RECONNECT_MAX_SECONDS
# The pause before trying the next replica in the same round: short, so a dead replica is left
# quickly, yet not zero, so a list of dead addresses is not spun through.
_HOP_DELAY = 0.1
# A manager that accepts the connection but never welcomes us (a hung replica, an address that
# swallows packets) is given up after this long, as if it had refused.
_WELCOME_TIMEOUT = 10.0
# The message limits of a channel opened before any manager told its payload limit; once one
# did, the send limit follows that limit (see `_message_limit`). The receive limit never drops
# below this: the Welcome carries the pool's template, whose size the HTTP body limit bounds,
# not the payload limit, and refusing it would lock the agent out of its manager.
_FIRST_MESSAGE_LIMIT = 64 * 1024 * 1024
_EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]  # missing from grpc-stubs
# How long the manager gets to end the stream after our half-close before we cut it.
_CLOSE_TIMEOUT = 5.0


class AgentRejected(Exception):
    """The manager refused this agent for a reason a retry cannot fix."""


class AgentWorker:
    def __init__(
        self,
        *,
        manager: str,
        pool: str,
        namespace: str = "default",
        token: str,
        agent_id: str | None = None,
        concurrency: int | None = None,
        tls_ca: Path | None = None,
        drain_grace: float = 30.0,
        cancel_grace: float = 2.0,
        welcome_timeout: float = _WELCOME_TIMEOUT,
    ) -> None:
        """`manager` is one `HOST:PORT` or a comma-separated list of replicas, tried in turn."""
        self._managers = ManagerRotation(parse_manager_addresses(manager))
        self.pool = pool
        self.namespace = namespace
        self.agent_id = agent_id or uuid.uuid4().hex[:12]
        self.concurrency = concurrency
        self.drain_grace = drain_grace
        self._token = token
        self._tls_ca = tls_ca
        self._outbox = Outbox()
        self._delegations = DelegationClient(self._outbox)
        self._journals = JournalClient(self._outbox)
        self._runner = TaskRunner(
            self._outbox, cancel_grace=cancel_grace, delegations=self._delegations, journals=self._journals
        )
        self._runtime: AgentRuntime | None = None
        self._template_json: bytes | None = None
        self._call: grpc.aio.StreamStreamCall[pb.AgentMessage, pb.ManagerMessage] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._drain: asyncio.Task[None] | None = None
        self._drain_early = False
        self._welcome_timeout = welcome_timeout
        self._cutoff: asyncio.TimerHandle | None = None
        self._channel_limit = _FIRST_MESSAGE_LIMIT
        self._welcomes = 0
        self._finished = False
        self._log = log.bind(agent=self.agent_id, pool=f"{namespace}/{pool}")

    @property
    def manager(self) -> str:
        """The manager address the agent uses now (or dials next)."""
        return self._managers.current

    @property
    def managers(self) -> tuple[str, ...]:
        return self._managers.addresses

    # -- lifecycle -------------------------------------------------------------
    async def run(self) -> None:
        """Serve the pool until drained or stopped; raise `AgentRejected` if refused."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        address = self.manager
        channel = self._channel(address)
        if self._drain_early:
            self.request_drain()
        backoff = _BACKOFF_START
        try:
            while not self._finished:
                if address != self.manager or self._channel_limit != self._message_limit():
                    await channel.close(None)
                    address = self.manager
                    channel = self._channel(address)
                welcomes = self._welcomes
                await self._attempt(pb_grpc.AgentChannelStub(channel))
                if self._finished:
                    break
                if self._welcomes > welcomes:  # the last stream worked: start over quickly
                    backoff = _BACKOFF_START
                if self._managers.advance():  # every replica failed this round: back off
                    delay = backoff * random.uniform(0.75, 1.25)  # jitter spreads a fleet's reconnects
                    backoff = min(backoff * 2, _BACKOFF_MAX)
                else:
                    delay = _HOP_DELAY * random.uniform(0.5, 1.5)
                if len(self.managers) > 1:
                    self._log.info("switching manager", manager=self.manager, previous=address, delay=round(delay, 3))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        finally:
            self._finished = True
            for pending in (self._drain, self._cutoff):
                if pending is not None:
                    pending.cancel()
            await self._abandon(TaskError(ErrorType.AGENT_LOST, "agent stopped", True), wait=1.0)
            if self._runtime is not None:
                await self._runtime.aclose()
            await channel.close(None)
            self._log.info("agent stopped")

    def request_drain(self) -> None:
        """Stop taking work, finish what runs (within `drain_grace`), then let `run` return."""
        if self._loop is None:
            self._drain_early = True
            return
        self._begin_drain(self.drain_grace)

    async def stop(self) -> None:
        """Stop now: in-flight attempts are cancelled and reported as lost (retryable)."""
        if self._loop is None:
            self._finished = True
            return
        await self._abandon(TaskError(ErrorType.AGENT_LOST, "agent stopped", True), wait=1.0)
        self._close_stream()

    # -- one stream --------------------------------------------------------------
    async def _attempt(self, stub: pb_grpc.AgentChannelAsyncStub) -> None:
        """One stream: return when it ends for a reason a retry may fix, raise `AgentRejected` otherwise."""
        try:
            await self._session(stub)
            if not self._finished:
                self._log.warning("manager closed the stream", manager=self.manager)
        except grpc.aio.AioRpcError as error:
            code = error.code()
            if code in _REJECTED:
                reason = f"manager {self.manager} refused the agent: {code.name}: {error.details()}"
                self._log.error("agent rejected", manager=self.manager, code=code.name, details=error.details())
                raise AgentRejected(reason) from None
            if code is grpc.StatusCode.ALREADY_EXISTS:
                # Our previous stream is still open on the manager's side (it has not seen it
                # break yet), or another agent uses our id: try again after the usual backoff.
                self._log.warning("manager has an agent with our id", manager=self.manager, details=error.details())
            elif not self._finished:
                self._log.warning("agent stream lost", manager=self.manager, code=code.name, details=error.details())
        except TimeoutError:
            self._log.warning("manager did not welcome the agent", manager=self.manager, timeout=self._welcome_timeout)

    def _message_limit(self) -> int:
        limit = self._outbox.payload_limit
        return _FIRST_MESSAGE_LIMIT if limit is None else grpc_message_limit(limit)

    def _channel(self, address: str) -> grpc.aio.Channel:
        # Channel options are fixed at creation: a limit learned from a Welcome applies from the
        # next stream on (the outbox and the runner enforce it on what we send right away).
        self._channel_limit = self._message_limit()
        options = [
            ("grpc.max_receive_message_length", max(self._channel_limit, _FIRST_MESSAGE_LIMIT)),
            ("grpc.max_send_message_length", self._channel_limit),
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            # grpc's own reconnect backoff grows to minutes; keep it within ours.
            ("grpc.initial_reconnect_backoff_ms", int(_BACKOFF_START * 1000)),
            ("grpc.max_reconnect_backoff_ms", int(_BACKOFF_MAX * 1000)),
        ]
        if self._tls_ca is None:
            return grpc.aio.insecure_channel(address, options=options)
        credentials = grpc.ssl_channel_credentials(root_certificates=self._tls_ca.read_bytes())
        return grpc.aio.secure_channel(address, credentials, options=options)

    async def _session(self, stub: pb_grpc.AgentChannelAsyncStub) -> None:
        """Run one stream until it ends."""
        # The in-flight snapshot and the new queue are taken in the same tick (see Outbox).
        resent = self._outbox.new_stream(hand_back_slots=not self._runner.draining)
        # Once known, send our slot count so the manager's credits match our runner's. Before the
        # first welcome, and while the runtime cannot serve, none: the Ready sent after the
        # welcome says how many once the handler imported (so no task reaches an agent that
        # would fail it for want of its code).
        serving = self._runtime is not None and self._runtime.load_error is None
        hello = pb.Hello(
            namespace=self.namespace,
            pool=self.pool,
            token=self._token,
            agent_id=self.agent_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            in_flight=[*self._runner.refs(), *resent],
            free_slots=self._runner.slots if serving else 0,
        )
        metadata = (("authorization", f"Bearer {self._token}"),)
        call = stub.Connect(self._outbox.stream(hello), metadata=metadata)
        self._call = call
        heartbeat: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(self._welcome_timeout):
                first = await call.read()
            if first is _EOF:
                return
            assert isinstance(first, pb.ManagerMessage)
            if not first.HasField("welcome"):
                raise AgentRejected(f"manager sent {first.WhichOneof('body')} before welcome")
            interval = self._welcomed(first.welcome)
            heartbeat = asyncio.create_task(self._heartbeat(interval))
            while True:
                message = await call.read()
                if message is _EOF:
                    return
                assert isinstance(message, pb.ManagerMessage)
                self._handle(message)
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            self._call = None
            call.cancel()

    def _welcomed(self, welcome: pb.Welcome) -> float:
        self._welcomes += 1
        self._managers.connected()
        # Every welcome: replicas (or a restarted manager) may be configured differently.
        self._outbox.payload_limit = welcome.max_payload_bytes or None
        self._outbox.acknowledged_results = welcome.acknowledges_results
        if self._runtime is None:
            try:
                spec = read_template(welcome.template_json)
            except TemplateError as error:
                raise AgentRejected(f"the manager's template for pool {self.pool!r} is invalid: {error}") from None
            # Template environment as defaults: what the pod or the pool sets explicitly wins.
            for name, value in spec.environment:
                os.environ.setdefault(name, value)
            slots = min(self.concurrency or spec.concurrency, spec.concurrency)
            if self.concurrency is not None and self.concurrency > spec.concurrency:
                self._log.warning("--concurrency is above the template's; using the template's",
                                  concurrency=self.concurrency, template_concurrency=spec.concurrency)  # fmt: skip
            raw_spec = orjson.loads(welcome.template_json)  # with the ToolServers its tools name
            self._runtime = build_runtime(spec, concurrency=slots, raw_spec=raw_spec)
            self._runner.runtime = self._runtime
            self._runner.slots = slots
            self._template_json = welcome.template_json
            problem = self._runtime.load_error
            if problem is None:
                self._outbox.status(slots)
                self._log.info(
                    "agent ready", manager=self.manager, runtime=spec.runtime.kind, slots=slots,
                    in_flight=self._runner.busy,
                )  # fmt: skip
            else:
                self._log.error(
                    "agent cannot serve: its handler does not load", manager=self.manager,
                    handler=spec.runtime.handler, python_path=list(spec.runtime.python_path), error=problem,
                )  # fmt: skip
        elif welcome.template_json != self._template_json:
            self._log.warning("the pool's template changed; restart the agent to apply it")
        else:
            self._log.info("agent reconnected", manager=self.manager, in_flight=self._runner.busy)
        if self._runtime.load_error is not None:
            self._outbox.status(0, self._runtime.load_error)  # every session: each manager lists it
        if self._welcomes > 1:
            self._delegations.resend_all()
            self._journals.resend_all()
        return welcome.heartbeat_interval_seconds or 5.0

    def _handle(self, message: pb.ManagerMessage) -> None:
        body = message.WhichOneof("body")
        if body == "assignments":
            self._runner.assign(message.assignments.items)
        elif body == "cancel":
            self._runner.cancel(message.cancel.task_ids, message.cancel.reason)
        elif body == "drain":
            self._begin_drain(message.drain.grace_seconds or self.drain_grace)
        elif body == "delegate_result":
            self._delegations.resolve(message.delegate_result)
        elif body == "journal_reply":
            self._journals.resolve(message.journal_reply)
        elif body == "results_ack":
            self._outbox.acknowledge(list(message.results_ack.attempts))
        else:
            self._log.warning("unexpected manager message", kind=body)

    async def _heartbeat(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self._outbox.heartbeat(self._runner.refs())

    # -- ending ----------------------------------------------------------------------
    def _begin_drain(self, grace: float) -> None:
        if self._drain is not None or self._finished:
            return
        self._runner.draining = True
        self._log.info("agent draining", grace=grace, in_flight=self._runner.busy)
        self._drain = asyncio.get_running_loop().create_task(self._drain_then_close(grace))

    async def _drain_then_close(self, grace: float) -> None:
        try:
            await asyncio.wait_for(self._runner.wait_idle(), grace)
        except TimeoutError:
            message = f"the agent drained before the task finished (grace {grace:g}s)"
            await self._abandon(TaskError(ErrorType.AGENT_LOST, message, True), wait=_CLOSE_TIMEOUT)
        self._close_stream()

    async def _abandon(self, error: TaskError, *, wait: float) -> None:
        self._runner.draining = True
        self._runner.abort_all(error)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._runner.wait_idle(), wait)

    def _close_stream(self) -> None:
        if self._finished and self._wake is not None and self._wake.is_set():
            return
        self._finished = True
        self._outbox.close()  # a clean half-close after the last results
        if self._wake is not None:
            self._wake.set()  # leave a reconnect backoff at once
        call = self._call
        if call is not None and self._loop is not None:
            self._cutoff = self._loop.call_later(_CLOSE_TIMEOUT, call.cancel)
