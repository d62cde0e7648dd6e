"""Model replies as they are generated, for whoever follows a run live.

An agent streams each model call's reply up as it comes (ModelStream); the pieces of a task that
belongs to a run go to the readers of that run's event stream on this replica, and nowhere else:
they are not stored (the call's journal record is what is kept) and a reader that falls behind
by more than `QUEUE_PIECES` loses the oldest rather than slowing the agent down. Only the agent
holding the attempt may speak for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from pweza.manager.dispatching import Dispatcher
from pweza.manager.sessions import AgentSession

QUEUE_PIECES = 2000
MAX_PIECE_CHARS = 4096


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


class LiveReplies:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._readers: dict[str, set[asyncio.Queue[ReplyPiece]]] = {}

    @contextlib.contextmanager
    def follow(self, run_id: str) -> Iterator[asyncio.Queue[ReplyPiece]]:
        """The pieces of the run's model replies from now on, while the block lasts."""
        queue: asyncio.Queue[ReplyPiece] = asyncio.Queue(QUEUE_PIECES)
        self._readers.setdefault(run_id, set()).add(queue)
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
        """Hand a piece to the readers of its task's run (none: dropped at once, cheaply)."""
        if not self._readers:
            return
        task = self._dispatcher.live(task_id)
        run_id = task.labels.get("run") if task is not None else None
        if task is None or run_id not in self._readers:
            return
        if not self._dispatcher.holds(session, task_id, attempt, "stream"):
            return
        piece = ReplyPiece(
            run_id, task.labels.get("step", ""), task_id, attempt, call,
            text[:MAX_PIECE_CHARS], tool[:MAX_PIECE_CHARS], arguments[:MAX_PIECE_CHARS],
        )  # fmt: skip
        for queue in self._readers.get(run_id, ()):
            if queue.full():
                queue.get_nowait()  # the oldest goes: a slow reader must not hold the agent up
            queue.put_nowait(piece)


__all__ = ["LiveReplies", "ReplyPiece"]
