"""Model replies as they are generated, for whoever follows a run live.

An agent streams each model call's reply up as it comes (ModelStream); the pieces of a task that
belongs to a run go to the readers of that run's event stream, and nowhere else: they are not
stored (the call's journal record is what is kept) and a reader that falls behind by more than
`QUEUE_PIECES` loses the oldest rather than slowing the agent down. Only the agent holding the
attempt may speak for it.

With several replicas, a reader may be on another replica than the agent. Each replica tells
the others which runs are read on it (on FOLLOW, when a reader starts and every
`FOLLOW_REFRESH_SECONDS` while one reads); the agent's replica then relays that run's pieces to
them (on REPLY, in batches every `RELAY_SECONDS`), and nothing when no one elsewhere reads. A
relayed piece's fields are cut to fit one notification. Pieces relayed are as volatile as the
rest: a replica's reader that joins late, or a notification connection that drops, misses some.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import orjson
import structlog

from pweza.manager.dispatching import Dispatcher
from pweza.manager.replica_set import RELAY_LINE_BYTES
from pweza.manager.replicas import Replicas
from pweza.manager.sessions import AgentSession

log = structlog.get_logger(__name__)
QUEUE_PIECES = 2000
MAX_PIECE_CHARS = 4096
FOLLOW_REFRESH_SECONDS = 5.0
FOLLOW_TTL_SECONDS = 3 * FOLLOW_REFRESH_SECONDS  # a reader elsewhere not heard of since: gone
RELAY_SECONDS = 0.02
MAX_RELAY_LINES = 5000  # waiting to be relayed: past it the oldest go, as for a slow reader


@dataclass(frozen=True, slots=True)
class ReplyPiece:
    """A piece of one model call's reply: text, or a tool call's name or a part of its arguments."""

    run_id: str
    step: str
    task_id: str
    attempt: int
    call: int
    text: str = ""
    tool: str = ""
    arguments: str = ""

    def as_json(self) -> dict[str, object]:
        body: dict[str, object] = {
            "step": self.step,
            "taskId": self.task_id,
            "attempt": self.attempt,
            "call": self.call,
        }
        if self.text:
            body["text"] = self.text
        if self.tool:
            body["tool"] = self.tool
        if self.arguments:
            body["arguments"] = self.arguments
        return body

    def relayed(self, sender: str) -> str:
        """The piece as one line for the other replicas, its fields cut until it fits."""
        piece, cut = self, MAX_PIECE_CHARS
        while True:
            line = orjson.dumps({**piece.as_json(), "run": piece.run_id, "from": sender}).decode()
            if len(line.encode()) <= RELAY_LINE_BYTES or cut == 0:
                return line
            cut //= 2
            piece = replace(self, text=self.text[:cut], tool=self.tool[:cut], arguments=self.arguments[:cut])

    @classmethod
    def read(cls, line: str) -> tuple[str, ReplyPiece] | None:
        """(sender, piece) of a relayed line; None for one that is not (logged)."""
        try:
            body = orjson.loads(line)
            piece = cls(
                str(body["run"]), str(body.get("step", "")), str(body["taskId"]), int(body["attempt"]),
                int(body["call"]), str(body.get("text", "")), str(body.get("tool", "")),
                str(body.get("arguments", "")),
            )  # fmt: skip
            return str(body["from"]), piece
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("relayed reply piece unreadable", line=line[:200])
            return None


class LiveReplies:
    def __init__(self, dispatcher: Dispatcher, replicas: Replicas) -> None:
        self._dispatcher = dispatcher
        self._replicas = replicas
        self._name = replicas.name
        self._readers: dict[str, set[asyncio.Queue[ReplyPiece]]] = {}
        # Runs read on other replicas, until when (monotonic) without news of their readers.
        self._elsewhere: dict[str, float] = {}
        self._outgoing: list[str] = []
        self._relaying: asyncio.Task[None] | None = None
        self._announcing: asyncio.Task[None] | None = None
        replicas.relay_to(self._on_followed, self._on_relayed)

    @contextlib.contextmanager
    def follow(self, run_id: str) -> Iterator[asyncio.Queue[ReplyPiece]]:
        """The pieces of the run's model replies from now on, while the block lasts."""
        queue: asyncio.Queue[ReplyPiece] = asyncio.Queue(QUEUE_PIECES)
        self._readers.setdefault(run_id, set()).add(queue)
        if self._name is not None and (self._announcing is None or self._announcing.done()):
            self._announcing = asyncio.create_task(self._announce(), name="live-replies-announce")
        try:
            yield queue
        finally:
            readers = self._readers.get(run_id)
            if readers is not None:
                readers.discard(queue)
                if not readers:
                    del self._readers[run_id]

    def publish(
        self, session: AgentSession, task_id: str, attempt: int, call: int, text: str, tool: str, arguments: str
    ) -> None:
        """Hand a piece to the readers of its task's run, here and elsewhere (none: dropped at once, cheaply)."""
        if not self._readers and not self._elsewhere:
            return
        task = self._dispatcher.live(task_id)
        run_id = task.labels.get("run") if task is not None else None
        if task is None or run_id is None:
            return
        elsewhere = self._read_elsewhere(run_id)
        if (run_id not in self._readers and not elsewhere) or not self._dispatcher.holds(
            session, task_id, attempt, "stream"
        ):
            return
        piece = ReplyPiece(
            run_id, task.labels.get("step", ""), task_id, attempt, call,
            text[:MAX_PIECE_CHARS], tool[:MAX_PIECE_CHARS], arguments[:MAX_PIECE_CHARS],
        )  # fmt: skip
        self._deliver(piece)
        if elsewhere and self._name is not None:
            self._relay(piece.relayed(self._name))

    def _deliver(self, piece: ReplyPiece) -> None:
        for queue in self._readers.get(piece.run_id, ()):
            if queue.full():
                queue.get_nowait()  # the oldest goes: a slow reader must not hold the agent up
            queue.put_nowait(piece)

    def _read_elsewhere(self, run_id: str) -> bool:
        until = self._elsewhere.get(run_id)
        if until is not None and until < time.monotonic():
            del self._elsewhere[run_id]
            return False
        return until is not None

    # -- between replicas --------------------------------------------------------
    async def _announce(self) -> None:
        """Tell the other replicas the runs read here, now and then every refresh, while any are."""
        while self._readers:
            lines = [f"{self._name} {run_id}" for run_id in self._readers]
            try:
                await self._replicas.tell_followed(lines)
            except Exception as error:  # noqa: BLE001 - the next refresh tries again
                log.warning("could not tell the replicas which runs are read here", error=str(error))
            await asyncio.sleep(FOLLOW_REFRESH_SECONDS)

    def _on_followed(self, lines: list[str]) -> None:
        until = time.monotonic() + FOLLOW_TTL_SECONDS
        for line in lines:
            replica, _, run_id = line.partition(" ")
            if replica != self._name and run_id:
                self._elsewhere[run_id] = until

    def _relay(self, line: str) -> None:
        self._outgoing.append(line)
        if len(self._outgoing) > MAX_RELAY_LINES:
            del self._outgoing[: len(self._outgoing) - MAX_RELAY_LINES]
        if self._relaying is None or self._relaying.done():
            self._relaying = asyncio.create_task(self._send_relayed(), name="live-replies-relay")

    async def _send_relayed(self) -> None:
        while self._outgoing:
            await asyncio.sleep(RELAY_SECONDS)  # a batch per notification round, not one per token
            lines, self._outgoing = self._outgoing, []
            try:
                await self._replicas.tell_pieces(lines)
            except Exception as error:  # noqa: BLE001 - pieces are volatile: these are lost
                log.warning("reply pieces not relayed", pieces=len(lines), error=str(error))

    def _on_relayed(self, lines: list[str]) -> None:
        for line in lines:
            read = ReplyPiece.read(line)
            if read is not None and read[0] != self._name and read[1].run_id in self._readers:
                self._deliver(read[1])

    async def stop(self) -> None:
        for task in (self._announcing, self._relaying):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


__all__ = ["LiveReplies", "ReplyPiece"]
