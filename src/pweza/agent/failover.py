"""Which manager an agent dials next, when it is given several replicas' addresses.

Every manager replica serves every pool from the same database, so any of them will do. When a
stream fails or cannot be opened the agent moves to the next address in its list; it backs off
only once every address has failed since the last stream that worked, so a dead replica is left
after one short hop while a fleet facing no manager at all still slows down.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ManagerRotation", "parse_manager_addresses"]


def parse_manager_addresses(text: str) -> tuple[str, ...]:
    """`HOST:PORT[,HOST:PORT...]` as a tuple of addresses; ValueError says which entry is wrong."""
    entries = [entry.strip() for entry in text.split(",")]
    if not any(entries):
        raise ValueError("no manager address given; expected HOST:PORT[,HOST:PORT...]")
    for position, entry in enumerate(entries, start=1):
        if not entry:
            raise ValueError(f"entry {position} of {text!r} is empty; expected HOST:PORT[,HOST:PORT...]")
        _check_address(entry)
    return tuple(entries)


def _check_address(address: str) -> None:
    host, colon, port = address.rpartition(":")
    if not colon or not host:
        raise ValueError(f"{address!r} is not HOST:PORT (a port is required)")
    # An IPv6 literal carries colons of its own; brackets keep the port unambiguous.
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise ValueError(f"{address!r} is not HOST:PORT; write an IPv6 address as [ADDRESS]:PORT")
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} has no valid port (1-65535)")


class ManagerRotation:
    """Round robin over manager addresses, counting the failures since the last working stream."""

    def __init__(self, addresses: Sequence[str]) -> None:
        if not addresses:
            raise ValueError("at least one manager address is needed")
        self.addresses = tuple(addresses)
        self._index = 0
        self._failures = 0

    @property
    def current(self) -> str:
        return self.addresses[self._index]

    def connected(self) -> None:
        """The current manager welcomed us: a new round of failures starts from here."""
        self._failures = 0

    def advance(self) -> bool:
        """Move to the next address; True when every address has failed in this round (time to back off)."""
        self._index = (self._index + 1) % len(self.addresses)
        self._failures += 1
        if self._failures < len(self.addresses):
            return False
        self._failures = 0
        return True
