"""Leader election on a coordination.k8s.io/v1 Lease: one operator replica reconciles at a time.

A standby takes the lease once the holder has not renewed it for `lease_seconds`. A leader
that cannot renew in time stops reconciling before another could have taken over
(crash-only: the process exits and its Deployment restarts it as a standby).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Any

import structlog

from pweza.operator.kube import ConflictError, Kube

log = structlog.get_logger(__name__)


class LostLeadership(Exception):
    pass


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _format(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


class LeaderElector:
    def __init__(
        self,
        kube: Kube,
        *,
        name: str,
        namespace: str,
        identity: str,
        lease_seconds: int = 15,
        renew_seconds: float = 5.0,
        retry_seconds: float = 2.0,
    ) -> None:
        self._kube = kube
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.retry_seconds = retry_seconds
        # Event-loop time of the last Lease read the API server answered, leader or standby.
        self.last_contact: float | None = None

    def in_contact(self) -> bool:
        """Whether the API server answered within one lease period: the operator's readiness
        (liveness is only that the process answers, so a standby or a cut-off replica is not
        restarted for it)."""
        if self.last_contact is None:
            return False
        return asyncio.get_running_loop().time() - self.last_contact <= self.lease_seconds

    def _contact(self) -> None:
        self.last_contact = asyncio.get_running_loop().time()

    async def acquire(self) -> None:
        """Wait until this replica holds the lease."""
        announced = False
        while not await self.try_acquire():
            if not announced:
                log.info("standing by for the lease", lease=f"{self.namespace}/{self.name}", identity=self.identity)
                announced = True
            await asyncio.sleep(self.retry_seconds)
        log.info("leader", lease=f"{self.namespace}/{self.name}", identity=self.identity)

    async def try_acquire(self) -> bool:
        now = _now()
        lease = await self._kube.get("coordination.k8s.io/v1", "Lease", self.name, self.namespace)
        self._contact()
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.lease_seconds,
            "acquireTime": _format(now),
            "renewTime": _format(now),
        }
        try:
            if lease is None:
                await self._kube.create(
                    {
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {"name": self.name, "namespace": self.namespace},
                        "spec": {**spec, "leaseTransitions": 0},
                    }
                )
                return True
            current = lease.get("spec") or {}
            holder = current.get("holderIdentity")
            renewed = _parse(current.get("renewTime"))
            duration = current.get("leaseDurationSeconds") or self.lease_seconds
            expired = renewed is None or now > renewed + dt.timedelta(seconds=duration)
            if holder not in (None, "", self.identity) and not expired:
                return False
            transitions = int(current.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
            lease["spec"] = {**spec, "leaseTransitions": transitions}
            await self._kube.replace(lease)
            return True
        except ConflictError:
            return False  # someone else wrote the lease first

    async def keep(self) -> None:
        """Renew the lease until cancelled; raise LostLeadership if it cannot be renewed in time."""
        last_renewed = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(self.renew_seconds)
            try:
                if await self._renew():
                    last_renewed = asyncio.get_running_loop().time()
                    continue
                raise LostLeadership(f"lease {self.namespace}/{self.name} was taken by another replica")
            except LostLeadership:
                raise
            except Exception as error:  # noqa: BLE001 - an API hiccup: keep trying until the deadline
                log.warning("lease renewal failed", error=str(error))
            # Give up early enough that no other replica can have taken over yet.
            if asyncio.get_running_loop().time() - last_renewed > self.lease_seconds - self.renew_seconds:
                raise LostLeadership(f"could not renew lease {self.namespace}/{self.name} in time")

    async def _renew(self) -> bool:
        lease = await self._kube.get("coordination.k8s.io/v1", "Lease", self.name, self.namespace)
        self._contact()
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return False
        lease["spec"]["renewTime"] = _format(_now())
        try:
            await self._kube.replace(lease)
        except ConflictError:
            return False
        return True

    async def release(self) -> None:
        """Hand the lease back at a clean shutdown so a standby takes over at once."""
        lease = await self._kube.get("coordination.k8s.io/v1", "Lease", self.name, self.namespace)
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        lease["spec"]["holderIdentity"] = ""
        lease["spec"]["renewTime"] = _format(_now() - dt.timedelta(seconds=self.lease_seconds + 1))
        with contextlib.suppress(ConflictError):
            await self._kube.replace(lease)
