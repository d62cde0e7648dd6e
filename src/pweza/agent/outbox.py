"""Everything the agent sends up its stream, coalesced into as few messages as possible.

Producers only append to pending lists; the stream's request iterator takes them when
gRPC asks for the next message. Whatever piles up while a write is in flight leaves as
one `Started` and one `Results` message, so batches grow with load by themselves: a
message per task would cap the agent near the stream's per-message rate, and
flush-per-tick alone still ping-pongs single results when handlers finish instantly.

A batch is bounded in bytes by the manager's payload limit (learned from its Welcome), so a
burst of large outputs leaves as several messages, each within the stream's message limit.

A result sent to a manager that acknowledges results (its Welcome says so) is kept until the
manager's ResultsAck says it is written: a manager killed between reading a result and writing
it would otherwise lose it, and the attempt would run again. The next stream lists every
result still held (unacknowledged or never sent) as in flight and sends it again first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from pweza.v1 import agent_pb2 as pb

# The batch budget before any Welcome said otherwise: the manager's default payload limit.
_DEFAULT_BATCH_BYTES = 1 << 20


class Outbox:
    def __init__(self) -> None:
        self._started: list[pb.AttemptRef] = []
        self._results: list[pb.TaskResult] = []
        # Sent, not yet acknowledged: (task id, attempt) -> result, oldest first.
        self._unacked: dict[tuple[str, int], pb.TaskResult] = {}
        # Whether the manager of the current stream acknowledges results (from its Welcome).
        self.acknowledged_results = False
        self._credit = 0
        self._heartbeat: list[pb.AttemptRef] | None = None
        # Delegations and journal calls: requests the manager answers by their request id.
        self._requests: list[pb.AgentMessage] = []
        self._status: pb.Ready | None = None
        self._ready = asyncio.Event()
        self._generation = 0
        self._closing = False
        # The manager's max_payload_bytes, from its Welcome; None until one came (or from a
        # manager too old to send it).
        self.payload_limit: int | None = None

    def started(self, task_id: str, attempt: int) -> None:
        self._started.append(pb.AttemptRef(task_id=task_id, attempt=attempt, at=time.time()))
        self._ready.set()

    def result(self, result: pb.TaskResult, credit: int) -> None:
        self._results.append(result)
        self._credit += credit
        self._ready.set()

    def status(self, slots: int, error: str = "") -> None:
        """The agent's Ready: its slots once its template is loaded, or why it cannot serve."""
        self._status = pb.Ready(slots=slots, error=error)
        self._ready.set()

    def credit(self, slots: int) -> None:
        if slots:
            self._credit += slots
            self._ready.set()

    def delegate(self, request: pb.DelegateRequest) -> None:
        self.request(pb.AgentMessage(delegate=request))

    def request(self, message: pb.AgentMessage) -> None:
        self._requests.append(message)
        self._ready.set()

    def heartbeat(self, refs: list[pb.AttemptRef]) -> None:
        self._heartbeat = refs  # only the latest list matters
        self._ready.set()

    def acknowledge(self, refs: list[pb.AttemptRef]) -> None:
        """The manager wrote these results: they need not be sent again."""
        for ref in refs:
            self._unacked.pop((ref.task_id, ref.attempt), None)

    def new_stream(self, *, hand_back_slots: bool = True) -> list[pb.AttemptRef]:
        """Retire the current stream's iterator and keep every result the manager may not have
        written (sent but unacknowledged, or never sent): returns their attempts, for the
        Hello's `in_flight`.

        Call it in the same tick as the Hello's `in_flight` snapshot: the manager then counts
        its credits afresh (slots minus in-flight), so pending credit would count twice and
        is dropped, as are stale starts and heartbeats; each kept result is in flight again,
        so it hands its slot back when it is sent (not while draining: no new work is wanted).
        """
        self._generation += 1
        self._results = [*self._unacked.values(), *self._results]
        self._unacked = {}
        self._started, self._heartbeat, self._status = [], None, None
        self._credit = len(self._results) if hand_back_slots else 0
        self._requests = []  # unanswered ones are re-sent after the next welcome
        self._ready.set()  # wakes the old iterator so it sees it is retired
        return [pb.AttemptRef(task_id=result.task_id, attempt=result.attempt) for result in self._results]

    def close(self) -> None:
        """End the current stream once what is pending is sent: a clean half-close."""
        self._closing = True
        self._ready.set()

    def stream(self, hello: pb.Hello) -> AsyncIterator[pb.AgentMessage]:
        """The request iterator of one stream: its Hello, then whatever is pending."""
        return self._pull(hello, self._generation)

    async def _pull(self, hello: pb.Hello, generation: int) -> AsyncIterator[pb.AgentMessage]:
        yield pb.AgentMessage(hello=hello)
        while self._generation == generation:
            message = self._next()
            if message is not None:
                yield message
            elif self._closing:
                return
            else:
                self._ready.clear()
                await self._ready.wait()

    def _next(self) -> pb.AgentMessage | None:
        # The Ready first: until it arrives the manager sends nothing. Starts go before results:
        # the manager ignores a start that arrives after its result.
        if self._status is not None:
            status, self._status = self._status, None
            return pb.AgentMessage(ready=status)
        if self._started:
            started, self._started = self._started, []
            return pb.AgentMessage(started=pb.Started(attempts=started))
        if self._requests:
            return self._requests.pop(0)
        if self._results:
            results = self._take_results()
            credit, self._credit = self._credit, 0
            return pb.AgentMessage(results=pb.Results(results=results, credit=credit))
        if self._credit:
            credit, self._credit = self._credit, 0
            return pb.AgentMessage(credit=pb.Credit(slots=credit))
        if self._heartbeat is not None:
            refs, self._heartbeat = self._heartbeat, None
            return pb.AgentMessage(heartbeat=pb.Heartbeat(attempts=refs))
        return None

    def _take_results(self) -> list[pb.TaskResult]:
        """The oldest pending results that fit one message's byte budget (at least one)."""
        budget = self.payload_limit or _DEFAULT_BATCH_BYTES
        size, count = 0, 0
        for result in self._results:
            size += result.ByteSize()
            if count and size > budget:
                break
            count += 1
        taken, self._results = self._results[:count], self._results[count:]
        if self.acknowledged_results:
            for result in taken:
                self._unacked[(result.task_id, result.attempt)] = result
        return taken
