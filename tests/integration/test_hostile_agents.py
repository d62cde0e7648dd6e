"""Agents that lie: the agent channel holds against forged ids, tokens, credits and reports.

Each test runs a real manager process (SQLite) and talks to its gRPC port with `HostileAgent`,
a raw stub that sends whatever it is told to. What must hold:

- an agent token serves only its pool; an expired one serves nothing;
- one agent id is connected once at a time (a second hello is refused, a reconnect works);
- results, starts and heartbeats count only from the stream holding the attempt's lease, and a
  hello listing another agent's attempt does not take it over;
- credits never exceed the slots the template allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import orjson
import pytest

from pweza.testing import eventually_async
from pweza.testing.platform import Platform
from pweza.v1 import agent_pb2 as pb
from tests.conftest import pool, template
from tests.integration.hostile_agent import HostileAgent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def agent_token(platform: Platform, pool_ref: str | None, ttl: str = "1h") -> str:
    body: dict[str, Any] = {"name": f"agents-{pool_ref}", "role": "agent", "ttl": ttl}
    body |= {"pool": pool_ref} if pool_ref else {"anyPool": True}
    with platform.client() as client:
        response = client.post("/api/v1/tokens", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def submit(platform: Platform, pool_name: str = "echo", value: Any = "hello") -> str:
    with platform.client() as client:
        response = client.post("/api/v1/tasks", json={"pool": pool_name, "input": value})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def task(platform: Platform, task_id: str) -> dict[str, Any]:
    with platform.client() as client:
        body: dict[str, Any] = client.get(f"/api/v1/tasks/{task_id}").json()
    return body


def refusals(platform: Platform) -> dict[tuple[str, str], float]:
    text = httpx.get(f"http://127.0.0.1:{platform.metrics_port}/metrics", timeout=10).text
    found: dict[tuple[str, str], float] = {}
    pattern = r'^pweza_agent_messages_refused_total\{message="(\w+)",reason="(\w+)"\} ([0-9.e+]+)$'
    for message, reason, value in re.findall(pattern, text, re.MULTILINE):
        found[(message, reason)] = float(value)
    return found


@pytest.fixture
def echo(platform: Platform) -> Platform:
    """The platform with pools `echo` (concurrency 2) and `other`."""
    platform.apply(template(concurrency=2), pool(), pool("other"))
    return platform


async def refused(agent: HostileAgent, **hello: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await agent.hello(**hello)
    return caught.value


# -- tokens -------------------------------------------------------------------------------
async def test_a_token_bound_to_one_pool_cannot_serve_another(echo: Platform) -> None:
    token = agent_token(echo, "default/echo")
    async with HostileAgent(echo.grpc_address) as agent:
        error = await refused(agent, token=token, pool="other")
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "default/echo" in (error.details() or "") and "default/other" in (error.details() or "")
    async with HostileAgent(echo.grpc_address) as agent:  # another namespace is another pool
        error = await refused(agent, token=token, pool="echo", namespace="team-b")
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    async with HostileAgent(echo.grpc_address) as agent:  # the token in call metadata is held to it too
        error = await refused(agent, token=None, metadata_token=token, pool="other")
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    async with HostileAgent(echo.grpc_address) as agent:
        welcome = await agent.hello(token=token, pool="echo", agent_id="bound")
    assert welcome.agent_id == "bound"


async def test_tokens_of_other_roles_and_forged_or_expired_tokens_are_refused(echo: Platform) -> None:
    with echo.client() as client:
        viewer = client.post("/api/v1/tokens", json={"name": "v", "role": "viewer"}).json()["token"]
    expiring = agent_token(echo, "default/echo", ttl="1s")
    cases = [(viewer, grpc.StatusCode.PERMISSION_DENIED), ("pwz_forged", grpc.StatusCode.UNAUTHENTICATED)]
    cases += [(None, grpc.StatusCode.UNAUTHENTICATED)]
    for token, code in cases:
        async with HostileAgent(echo.grpc_address) as agent:
            assert (await refused(agent, token=token, pool="echo")).code() is code

    async def refused_as_expired() -> grpc.aio.AioRpcError | None:
        async with HostileAgent(echo.grpc_address) as agent:
            try:
                await agent.hello(token=expiring, pool="echo")  # still valid: let in, and gone again
            except grpc.aio.AioRpcError as error:
                return error if error.details() == "token expired" else None
        return None

    error = await eventually_async(refused_as_expired, timeout=10, what="the one-second token to expire")
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED


# -- identity -----------------------------------------------------------------------------
async def test_a_connected_agent_id_is_not_let_in_twice_but_a_reconnect_is(echo: Platform) -> None:
    token = agent_token(echo, "default/echo")
    first = HostileAgent(echo.grpc_address)
    await first.hello(token=token, pool="echo", agent_id="twin")
    first.heartbeat([])  # alive and saying so
    await asyncio.sleep(0.1)
    async with HostileAgent(echo.grpc_address) as second:
        error = await refused(second, token=token, pool="echo", agent_id="twin")
    assert error.code() is grpc.StatusCode.ALREADY_EXISTS
    assert "twin" in (error.details() or "") and "already connected" in (error.details() or "")
    with echo.client() as client:
        agents = client.get("/api/v1/agents").json()["items"]
    assert [(a["id"], a["hostname"]) for a in agents] == [("twin", "hostile")]
    await first.close()  # its stream ends: the id is free again
    async with asyncio.timeout(10):
        while True:
            async with HostileAgent(echo.grpc_address) as again:
                try:
                    await again.hello(token=token, pool="echo", agent_id="twin")
                    break
                except grpc.aio.AioRpcError as error:
                    assert error.code() is grpc.StatusCode.ALREADY_EXISTS
            await asyncio.sleep(0.05)


async def test_a_stream_gone_silent_gives_way_to_the_agent_reconnecting(echo: Platform) -> None:
    """A connection broken without a word stays open on the manager's side until keepalive
    notices; an agent back on a new stream is let in once the old one has missed three
    heartbeats (the platform's: 0.5 s), and the old stream is closed."""
    token = agent_token(echo, "default/echo")
    silent = HostileAgent(echo.grpc_address)
    await silent.hello(token=token, pool="echo", agent_id="phoenix", free_slots=1)
    await asyncio.sleep(2.0)  # not a word
    async with HostileAgent(echo.grpc_address) as back:
        await back.hello(token=token, pool="echo", agent_id="phoenix", free_slots=1)
        assert await silent.next_message(timeout=5) is None  # the manager closed the silent stream
        task_id = submit(echo, value="to the new stream")
        item = (await back.assignments())[0]
        back.result(item.task_id, item.attempt, "done", credit=1)
        finished = await asyncio.to_thread(echo.wait_task, task_id, 10)
    await silent.close()
    assert finished["state"] == "succeeded"
    assert "agent reconnected while its previous stream was silent; closing that stream" in echo.manager_log()


async def test_malformed_agent_ids_are_refused(echo: Platform) -> None:
    token = agent_token(echo, "default/echo")
    for forged in ("x" * 65, "../../etc", "has space", "-leading-dash"):
        async with HostileAgent(echo.grpc_address) as agent:
            error = await refused(agent, token=token, pool="echo", agent_id=forged)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and "agent_id" in (error.details() or "")


# -- leases -------------------------------------------------------------------------------
async def test_reports_about_an_attempt_count_only_from_the_stream_holding_it(echo: Platform) -> None:
    token = agent_token(echo, "default/echo")
    async with HostileAgent(echo.grpc_address) as holder, HostileAgent(echo.grpc_address) as mallory:
        await holder.hello(token=token, pool="echo", agent_id="holder", free_slots=1)
        task_id = submit(echo, value="the real output")
        item = (await holder.assignments())[0]
        assert (item.task_id, item.attempt, item.idempotency_key) == (task_id, 1, f"{task_id}/1")
        # Another agent of the same pool, with a token of that pool, tries to act for it.
        await mallory.hello(token=token, pool="echo", agent_id="mallory", free_slots=0)
        mallory.started(task_id, 1)
        mallory.heartbeat([(task_id, 1)])
        mallory.result(task_id, 1, "forged output", credit=1)
        mallory.result(task_id, 1, ok=False, error="forged failure")
        mallory.result(task_id, 2, "a guess at the next attempt")
        await asyncio.sleep(0.5)
        assert task(echo, task_id)["state"] == "assigned"  # not even marked started
        # The holder's own reports count.
        holder.started(item.task_id, item.attempt)
        holder.result(item.task_id, item.attempt, "the real output", credit=1)
        finished = await asyncio.to_thread(echo.wait_task, task_id, 10)
    assert (finished["state"], finished["output"]) == ("succeeded", "the real output")
    history = task(echo, task_id)["attemptHistory"]
    assert [(a["number"], a["agentId"], a["state"]) for a in history] == [(1, "holder", "succeeded")]
    counted = refusals(echo)
    assert counted[("result", "not_holder")] == 2 and counted[("started", "not_holder")] == 1
    assert counted[("heartbeat", "not_holder")] == 1 and counted[("result", "stale")] == 1
    log = echo.manager_log()
    assert "agent message refused" in log and '"agent": "mallory"' in log and '"holder": "holder"' in log


async def test_a_hello_cannot_take_over_an_attempt_held_by_another_agent(echo: Platform) -> None:
    token = agent_token(echo, "default/echo")
    other_pool = agent_token(echo, "default/other")
    any_pool = agent_token(echo, None)
    holder = HostileAgent(echo.grpc_address)
    await holder.hello(token=token, pool="echo", agent_id="holder", free_slots=1)
    task_id = submit(echo, value="kept")
    item = (await holder.assignments())[0]
    await holder.close()  # its stream is gone; the lease waits for it to come back
    async with (
        HostileAgent(echo.grpc_address) as thief,
        HostileAgent(echo.grpc_address) as neighbour,
        HostileAgent(echo.grpc_address) as lookalike,
    ):
        # Another agent id of the pool lists the attempt as its own.
        await thief.hello(token=token, pool="echo", agent_id="thief", free_slots=0, in_flight=[(task_id, 1)])
        # An agent of another pool does the same.
        await neighbour.hello(token=other_pool, pool="other", agent_id="nb", free_slots=0, in_flight=[(task_id, 1)])
        thief.result(task_id, 1, "stolen")
        neighbour.result(task_id, 1, "stolen too")
        await asyncio.sleep(0.3)
        assert task(echo, task_id)["state"] == "assigned"
        await thief.close()
        # The holder's id with another token (one for any pool) is not the holder either.
        await lookalike.hello(token=any_pool, pool="echo", agent_id="holder", free_slots=0, in_flight=[(task_id, 1)])
        lookalike.result(task_id, 1, "stolen by a lookalike")
        await asyncio.sleep(0.3)
        assert task(echo, task_id)["state"] == "assigned"
    # The real holder reconnects (same id, same token) listing it: the lease is its again.
    async with HostileAgent(echo.grpc_address) as back:
        await back.hello(token=token, pool="echo", agent_id="holder", free_slots=1, in_flight=[(task_id, 1)])
        back.result(item.task_id, item.attempt, "kept", credit=1)
        finished = await asyncio.to_thread(echo.wait_task, task_id, 10)
    assert (finished["state"], finished["output"]) == ("succeeded", "kept")
    counted = refusals(echo)
    assert counted[("in_flight", "not_holder")] == 2 and counted[("in_flight", "other_pool")] == 1
    assert counted[("result", "not_holder")] == 3
    log = echo.manager_log()
    assert '"agent": "thief"' in log and '"agent": "nb"' in log and '"reason": "other_pool"' in log


# -- credits ------------------------------------------------------------------------------
async def test_slots_beyond_the_template_are_refused(echo: Platform) -> None:
    token = agent_token(echo, "default/echo")
    async with HostileAgent(echo.grpc_address) as agent:
        error = await refused(agent, token=token, pool="echo", free_slots=1000)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "free_slots" in (error.details() or "") and "0 to 2" in (error.details() or "")


async def test_zero_slots_means_none_and_credits_never_exceed_the_slots(echo: Platform) -> None:
    token = agent_token(echo, "default/echo")
    for n in range(5):
        submit(echo, value=n)
    async with HostileAgent(echo.grpc_address) as idle:
        await idle.hello(token=token, pool="echo", agent_id="idle", free_slots=0)
        idle.credit(100)  # credits it was never given
        assert [m for m in await idle.quiet_for(0.5) if m.HasField("assignments")] == []
    async with HostileAgent(echo.grpc_address) as greedy:
        await greedy.hello(token=token, pool="echo", agent_id="greedy", free_slots=1)
        first = await greedy.assignments()
        assert len(first) == 1
        greedy.credit(100)  # still holding the one it has: no room for more
        assert [m for m in await greedy.quiet_for(0.5) if m.HasField("assignments")] == []
        # Finishing it with a huge credit frees exactly its one slot.
        greedy.result(first[0].task_id, first[0].attempt, "done", credit=1_000_000)
        second = await greedy.assignments()
        assert len(second) == 1
        assert [m for m in await greedy.quiet_for(0.5) if m.HasField("assignments")] == []
    unset = HostileAgent(echo.grpc_address)  # no free_slots: the template's concurrency (2)
    await unset.hello(token=token, pool="echo", agent_id="unset")
    got: list[Any] = []
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        got += await unset.assignments(timeout=5)
    assert len(got) == 2
    assert [m for m in await unset.quiet_for(0.5) if m.HasField("assignments")] == []
    await unset.close()


# -- the call journal -------------------------------------------------------------------------
async def journal_reply(agent: HostileAgent, message: pb.AgentMessage | None) -> pb.JournalReply:
    """The next JournalReply, after sending `message` (None: send nothing, wait for one)."""
    if message is not None:
        agent.send(message)
    while True:
        got = await agent.next_message()
        assert got is not None, f"the stream ended: {agent.ended}"
        if got.HasField("journal_reply"):
            return got.journal_reply


def append(task_id: str, attempt: int, record: Any, request_id: str = "r") -> pb.AgentMessage:
    body = record if isinstance(record, bytes) else orjson.dumps(record)
    request = pb.JournalAppend(request_id=request_id, task_id=task_id, attempt=attempt, record_json=body)
    return pb.AgentMessage(journal_append=request)


def load(task_id: str, attempt: int) -> pb.AgentMessage:
    return pb.AgentMessage(journal_load=pb.JournalLoad(request_id="load", task_id=task_id, attempt=attempt))


@contextlib.asynccontextmanager
async def holder_and_mallory(echo: Platform) -> AsyncIterator[tuple[HostileAgent, HostileAgent, str, pb.Assignment]]:
    """Two agents of the echo pool: `holder` runs a task just submitted, `mallory` has no slots."""
    token = agent_token(echo, "default/echo")
    async with HostileAgent(echo.grpc_address) as holder, HostileAgent(echo.grpc_address) as mallory:
        await holder.hello(token=token, pool="echo", agent_id="holder", free_slots=1)
        task_id = submit(echo)
        item = (await holder.assignments())[0]
        await mallory.hello(token=token, pool="echo", agent_id="mallory", free_slots=0)
        yield holder, mallory, task_id, item


GOOD_RECORD = {"index": 0, "kind": "tool", "requestDigest": "ab" * 32, "response": {"name": "t", "content": "x"}}


async def test_only_the_holder_writes_or_reads_an_attempts_journal_and_only_well_formed_records(
    echo: Platform,
) -> None:
    async with holder_and_mallory(echo) as (holder, mallory, task_id, item):
        forged = await journal_reply(mallory, append(task_id, item.attempt, GOOD_RECORD))
        assert not forged.ok and "not running on this agent" in forged.error
        peek = await journal_reply(mallory, load(task_id, item.attempt))
        assert not peek.ok and peek.records_json == b""
        ahead = await journal_reply(holder, append(task_id, item.attempt + 1, GOOD_RECORD))
        assert not ahead.ok, "an attempt not yet given out"
        for bad, words in [
            (b"not json", "not JSON"),
            ([1, 2], "JSON object"),
            ({**GOOD_RECORD, "index": -1}, "index must be"),
            ({**GOOD_RECORD, "index": True}, "index must be"),
            ({**GOOD_RECORD, "kind": "shell"}, "kind must be"),
            ({**GOOD_RECORD, "requestDigest": "x" * 500}, "requestDigest"),
            ({**GOOD_RECORD, "response": "text"}, "response must be"),
            ({**GOOD_RECORD, "usage": {"promptTokens": "many"}}, "usage must be"),
        ]:
            reply = await journal_reply(holder, append(task_id, item.attempt, bad))
            assert not reply.ok and words in reply.error, (bad, reply.error)
        kept = await journal_reply(holder, append(task_id, item.attempt, GOOD_RECORD, request_id="mine"))
        assert (kept.request_id, kept.ok, kept.error) == ("mine", True, "")
        # Its own attempt has no earlier one: nothing to replay.
        nothing = await journal_reply(holder, load(task_id, item.attempt))
        assert nothing.ok and orjson.loads(nothing.records_json) == []
    journal = task(echo, task_id)["journal"]
    assert [(c["attempt"], c["index"], c["kind"], c["tool"]) for c in journal] == [(1, 0, "tool", "t")]
    assert refusals(echo)[("journal", "not_holder")] == 2


def approval(
    task_id: str, attempt: int, key: str, arguments: bytes = b'{"text": "hi"}', request_id: str = "a"
) -> pb.AgentMessage:
    request = pb.ToolApproval(
        request_id=request_id, task_id=task_id, attempt=attempt, key=key, tool="append_note", arguments_json=arguments
    )
    return pb.AgentMessage(tool_approval=request)


async def test_only_the_holder_asks_for_a_tool_approval_and_a_wait_does_not_stop_the_stream(echo: Platform) -> None:
    async with holder_and_mallory(echo) as (holder, mallory, task_id, item):
        forged = await journal_reply(mallory, approval(task_id, item.attempt, "approval-append_note-1"))
        assert not forged.ok and "not running on this agent" in forged.error
        for key, arguments, words in [
            ("mine", b"{}", "key must start with"),
            ("approval-append_note-1", b"not json", "not JSON"),
            ("approval-append_note-1", b"[1]", "JSON object"),
            ("approval-append_note-1", b'{"text": "' + b"x" * 70_000 + b'"}', "at most"),
        ]:
            reply = await journal_reply(holder, approval(task_id, item.attempt, key, arguments))
            assert not reply.ok and words in reply.error, (key, reply.error)
        assert task(echo, task_id)["toolApprovals"] == [], "a refused request was kept"

        holder.send(approval(task_id, item.attempt, "approval-append_note-1", request_id="wait"))
        # While that waits for a person, the agent's other messages are still answered.
        kept = await journal_reply(holder, append(task_id, item.attempt, GOOD_RECORD, request_id="meanwhile"))
        assert (kept.request_id, kept.ok) == ("meanwhile", True)
        waiting = task(echo, task_id)["toolApprovals"]
        assert [(a["key"], a["state"], a["arguments"]) for a in waiting] == [
            ("approval-append_note-1", "pending", {"text": "hi"})
        ]
        with echo.client() as client:
            decided = client.post(f"/api/v1/tasks/{task_id}/approvals/approval-append_note-1/approve", json={})
            assert decided.status_code == 200, decided.text
        answer = await journal_reply(holder, None)  # the decision arrives
        assert (answer.request_id, answer.ok) == ("wait", True), answer
        assert orjson.loads(answer.records_json)[0]["decision"] == "approved"
        # Asked again (a re-send after a reconnect, a retry): answered at once, not recorded twice.
        again = await journal_reply(holder, approval(task_id, item.attempt, "approval-append_note-1", request_id="b"))
        assert again.ok and orjson.loads(again.records_json)[0]["decision"] == "approved"
    assert len(task(echo, task_id)["toolApprovals"]) == 1


def first_reply_pieces(
    url: str, token: str, verify: Any, run_id: str, into: list[dict[str, Any]], stop_at: str
) -> None:
    """The run's model.delta pieces read from the manager at `url`, until one whose text is
    `stop_at` (bounded by the read timeout)."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream(
        "GET", f"{url}/api/v1/runs/{run_id}/events", headers=headers, verify=verify, timeout=httpx.Timeout(10, read=20)
    ) as stream:
        kind = ""
        for line in stream.iter_lines():
            if line.startswith("event:"):
                kind = line.partition(":")[2].strip()
            elif line.startswith("data:") and kind == "model.delta":
                into.append(orjson.loads(line.partition(":")[2]))
                if into[-1].get("text") == stop_at:
                    return


async def test_only_the_holder_streams_replies_into_a_runs_events(echo: Platform) -> None:
    workflow = {"apiVersion": "pweza.ai/v1", "kind": "Workflow", "metadata": {"name": "one"},
                "spec": {"steps": [{"name": "only", "agent": {"pool": "echo"}, "input": "x"}]}}  # fmt: skip
    echo.apply(workflow)
    token = agent_token(echo, "default/echo")
    async with HostileAgent(echo.grpc_address) as holder, HostileAgent(echo.grpc_address) as mallory:
        await holder.hello(token=token, pool="echo", agent_id="holder", free_slots=1)
        await mallory.hello(token=token, pool="echo", agent_id="mallory", free_slots=0)
        with echo.client() as client:
            run_id = client.post("/api/v1/workflows/one/runs", json={}).json()["id"]
        item = (await holder.assignments())[0]
        pieces: list[dict[str, Any]] = []
        reading = (echo.url, echo.admin_token, echo.verify, run_id, pieces, "mine")
        reader = threading.Thread(target=first_reply_pieces, args=reading, daemon=True)
        reader.start()
        await asyncio.sleep(1.0)  # the reader is following the run

        def piece(text: str, attempt: int = item.attempt) -> pb.AgentMessage:
            return pb.AgentMessage(model_stream=pb.ModelStream(task_id=item.task_id, attempt=attempt, text=text))

        mallory.send(piece("forged"))
        holder.send(piece("stale", attempt=item.attempt + 1))
        await asyncio.sleep(0.5)  # sent in order: anything let through would come before "mine"
        holder.send(piece("mine"))
        await asyncio.to_thread(reader.join, 30)
    assert [p.get("text") for p in pieces] == ["mine"], pieces
    assert pieces[0]["step"] == "only" and pieces[0]["taskId"] == item.task_id


def model_slot(model: str, wait: float = 0.0, request_id: str = "slot") -> pb.AgentMessage:
    return pb.AgentMessage(model_slot=pb.ModelSlot(request_id=request_id, model=model, wait_seconds=wait))


async def test_a_model_slot_is_released_only_by_its_holder_and_freed_when_its_stream_ends(echo: Platform) -> None:
    limited = {"apiVersion": "pweza.ai/v1", "kind": "ModelConfig", "metadata": {"name": "limited"},
               "spec": {"baseUrl": "http://127.0.0.1:9/v1", "model": "m", "concurrency": 1}}  # fmt: skip
    echo.apply(limited)
    token = agent_token(echo, "default/echo")
    async with HostileAgent(echo.grpc_address) as holder, HostileAgent(echo.grpc_address) as mallory:
        await holder.hello(token=token, pool="echo", agent_id="holder", free_slots=0)
        await mallory.hello(token=token, pool="echo", agent_id="mallory", free_slots=0)
        for name, words in [("", "names no ModelConfig"), ("m" * 64, "longer than 63")]:
            refused = await journal_reply(mallory, model_slot(name))
            assert not refused.ok and words in refused.error, refused
        taken = await journal_reply(holder, model_slot("limited"))
        lease = orjson.loads(taken.records_json)[0]["lease"]
        assert taken.ok and lease
        busy = await journal_reply(mallory, model_slot("limited"))
        assert (busy.ok, busy.error_type) == (False, "ModelBusy") and "1 request(s) at once" in busy.error
        # Mallory learned the lease: releasing it frees nothing, as it is not hers.
        mallory.send(pb.AgentMessage(model_slot_release=pb.ModelSlotRelease(lease=lease)))
        still = await journal_reply(mallory, model_slot("limited", request_id="again"))
        assert (still.request_id, still.error_type) == ("again", "ModelBusy")
        # A wait for room does not stop the stream: another request is answered meanwhile.
        mallory.send(model_slot("limited", wait=20, request_id="waiting"))
        unlimited = await journal_reply(mallory, model_slot("no-such-model", request_id="other"))
        assert (unlimited.request_id, unlimited.ok) == ("other", True)
        await holder.close()  # the holder's stream ends: its slot is free at once
        got = await journal_reply(mallory, None)
        assert (got.request_id, got.ok) == ("waiting", True), got


async def test_of_people_deciding_one_tool_call_at_once_exactly_one_decision_stands(echo: Platform) -> None:
    async with holder_and_mallory(echo) as (holder, _mallory, task_id, item):
        holder.send(approval(task_id, item.attempt, "approval-append_note-1", request_id="wait"))
        await eventually_async(lambda: bool(task(echo, task_id)["toolApprovals"]), timeout=10)
        path = f"/api/v1/tasks/{task_id}/approvals/approval-append_note-1"
        async with httpx.AsyncClient(
            base_url=echo.url, verify=echo.verify, headers={"Authorization": f"Bearer {echo.admin_token}"}
        ) as client:
            answers = await asyncio.gather(*[
                client.post(f"{path}/{'approve' if number % 2 else 'reject'}", json={"comment": f"person {number}"})
                for number in range(8)
            ])  # fmt: skip
        assert sorted(answer.status_code for answer in answers) == [200] + [409] * 7, [a.text for a in answers]
        winner = next(answer.json() for answer in answers if answer.status_code == 200)
        told = await journal_reply(holder, None)
        assert told.request_id == "wait"
        decision = orjson.loads(told.records_json)[0]
        # The agent is told the decision that was answered 200, and the task shows that one.
        (shown,) = task(echo, task_id)["toolApprovals"]
        assert decision["comment"] == shown["comment"] == winner["comment"], (decision, shown, winner)
