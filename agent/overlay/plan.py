"""The overlay reconciler's pure half: what the kernel should hold, and the diff.

For every remote node's subnet lease, flannel's three entries on the VXLAN device:

- neighbour: remote subnet's .0 (its VTEP address) → remote VTEP MAC (permanent)
- fdb: remote VTEP MAC → remote public IP
- route: remote subnet via its .0, onlink

`plan(desired, actual)` is a pure function; `DataPath.apply` (agent/overlay/datapath.py)
executes the result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.overlay.leases import SubnetLease
from vulcano.network import BACKEND_TYPE, NetworkConfig, vtep_address


@dataclass(frozen=True, order=True)
class Neighbour:
    ip: str
    mac: str


@dataclass(frozen=True, order=True)
class FdbEntry:
    mac: str
    dst: str


@dataclass(frozen=True, order=True)
class Route:
    dst: str  # CIDR
    gateway: str


@dataclass(frozen=True)
class DataPathState:
    """The overlay entries on the VXLAN device (desired, or read from the kernel)."""

    neighbours: frozenset[Neighbour] = frozenset()
    fdb: frozenset[FdbEntry] = frozenset()
    routes: frozenset[Route] = frozenset()


@dataclass(frozen=True)
class Plan:
    """Entries to remove and to add; apply removals first, in the order listed."""

    remove_routes: tuple[Route, ...] = ()
    remove_neighbours: tuple[Neighbour, ...] = ()
    remove_fdb: tuple[FdbEntry, ...] = ()
    add_fdb: tuple[FdbEntry, ...] = ()
    add_neighbours: tuple[Neighbour, ...] = ()
    add_routes: tuple[Route, ...] = ()
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def empty(self) -> bool:
        return not (
            self.remove_routes
            or self.remove_neighbours
            or self.remove_fdb
            or self.add_fdb
            or self.add_neighbours
            or self.add_routes
        )


def desired_state(
    leases: Iterable[SubnetLease], own_machine_id: str, config: NetworkConfig
) -> DataPathState:
    """The entries every remote VXLAN lease of this network calls for."""
    neighbours, fdb, routes = set(), set(), set()
    for lease in leases:
        if lease.machine_id == own_machine_id or lease.backend_type != BACKEND_TYPE:
            continue
        if not config.contains_subnet(lease.subnet) or not lease.vtep_mac:
            continue
        gateway = str(vtep_address(lease.subnet))
        neighbours.add(Neighbour(gateway, lease.vtep_mac.lower()))
        fdb.add(FdbEntry(lease.vtep_mac.lower(), lease.public_ip))
        routes.add(Route(str(lease.subnet), gateway))
    return DataPathState(frozenset(neighbours), frozenset(fdb), frozenset(routes))


def plan(desired: DataPathState, actual: DataPathState) -> Plan:
    """What to remove from and add to the kernel so it holds exactly `desired`."""
    # A route whose gateway changed must be removed before the new one is added.
    return Plan(
        remove_routes=tuple(sorted(actual.routes - desired.routes)),
        remove_neighbours=tuple(sorted(actual.neighbours - desired.neighbours)),
        remove_fdb=tuple(sorted(actual.fdb - desired.fdb)),
        add_fdb=tuple(sorted(desired.fdb - actual.fdb)),
        add_neighbours=tuple(sorted(desired.neighbours - actual.neighbours)),
        add_routes=tuple(sorted(desired.routes - actual.routes)),
    )
