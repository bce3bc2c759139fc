"""What a machine's units need from the rest of the agent, as small protocols.

MachineUnits (agent/units/machine_units.py) is handed these and nothing more: its
membership (who this machine is, on which lease), its overlay sandboxes, its services.
"""

from __future__ import annotations

from typing import Any, Protocol

from agent.services.instances import Instance
from vulcano.keyspace import Keyspace


class Sandboxes(Protocol):
    """Network namespaces on the overlay for units with Sandbox=true."""

    def create(self, name: str) -> str:
        """Make sandbox ``name``; its overlay address."""

    def delete(self, name: str) -> None: ...

    def address_of(self, name: str) -> str | None:
        """The address of sandbox ``name`` if it exists (made before a restart)."""


class Membership(Protocol):
    """What this machine's units need from its membership: who it is, on which lease."""

    @property
    def machine_id(self) -> str: ...
    @property
    def hostname(self) -> str: ...
    @property
    def keyspace(self) -> Keyspace: ...
    @property
    def lease_ttl(self) -> float: ...

    def etcd_client(self) -> Any: ...

    def lease_id(self) -> int:
        """The machine lease unit states are written on."""

    def lease_deadline(self) -> float:
        """Monotonic time until which the machine lease is certainly held."""


class Services(Protocol):
    """Checks and endpoints (agent/services/); ``observe`` returns what to restart now."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def observe(self, instances: list[Instance]) -> list[str]: ...
    def forget(self, name: str) -> None: ...
    def clear(self) -> None: ...
