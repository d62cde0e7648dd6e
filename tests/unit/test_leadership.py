"""The operator's readiness follows its Lease calls to the API server (liveness does not)."""

from __future__ import annotations

import contextlib
from typing import Any

from pweza.operator.leadership import LeaderElector
from pweza.testing import eventually_async


class FakeKube:
    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.down = False

    async def get(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        if self.down:
            raise ConnectionRefusedError("the API server is unreachable")
        return self.lease

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        self.lease = body
        return body

    async def replace(self, body: dict[str, Any]) -> dict[str, Any]:
        self.lease = body
        return body


async def test_ready_while_the_api_server_answers_within_a_lease_period() -> None:
    kube = FakeKube()
    elector = LeaderElector(kube, name="op", namespace="ns", identity="a", lease_seconds=1)  # type: ignore[arg-type]
    assert not elector.in_contact(), "not ready before the first answer"
    assert await elector.try_acquire()
    assert elector.in_contact()
    standby = LeaderElector(kube, name="op", namespace="ns", identity="b", lease_seconds=1)  # type: ignore[arg-type]
    assert not await standby.try_acquire()
    assert standby.in_contact(), "a standby that reads the Lease is ready"
    kube.down = True

    async def out_of_contact() -> bool:
        with contextlib.suppress(ConnectionRefusedError):
            await standby.try_acquire()  # an unanswered call does not count
        return not standby.in_contact() and not elector.in_contact()

    await eventually_async(out_of_contact, timeout=10, what="both to lose contact once a lease passed unanswered")
