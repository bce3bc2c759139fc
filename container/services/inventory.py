"""The machines as the panel shows them: record, subnet lease, last seen, standing.

A machine's record lives on its agent's lease, which the agent refreshes every few
seconds: the lease's remaining time says when the agent was last heard from. Its
overlay subnet is the lease under ``network/subnets/`` that names it; a subnet whose
machine has no record any more is a machine gone (its subnet outlives it a while).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from container.services.cluster import Cluster
from vulcano.keyspace import segment_to_cidr
from vulcano.records import Machine
from vulcano.registry import Registry

UP = "up"
RESTARTING = "restarting"  # its agent said it is restarting: its units stay put a while
GONE = "gone"  # no record (lease expired), but it still holds a subnet


@dataclass(frozen=True)
class MachineRow:
    """One machine: its record while it is announced, its subnet, when last heard from."""

    id: str
    machine: Machine | None
    standing: str
    subnet: str | None
    last_seen: float | None  # seconds since epoch of the agent's last lease refresh
    lease_ttl: int | None  # the lease's granted TTL, seconds

    @property
    def metadata(self) -> dict[str, str]:
        return self.machine.metadata if self.machine is not None else {}


def machine_rows(cluster: Cluster) -> list[MachineRow]:
    """Every machine announced or holding a subnet, by id."""
    with cluster.registry() as registry:
        machines = {m.id: m for m in registry.machines()}
        subnets = _subnets(registry)
        restarting = {
            meta.key.decode()[len(registry.ks.machines_restarting) :]
            for _, meta in registry.client.get_prefix(registry.ks.machines_restarting)
        }
        now = time.time()
        rows = []
        for machine_id in sorted(set(machines) | set(subnets)):
            machine = machines.get(machine_id)
            seen, ttl = _heard(registry, machine, now)
            if machine is None:
                standing = GONE
            elif machine_id in restarting:
                standing = RESTARTING
            else:
                standing = UP
            rows.append(
                MachineRow(machine_id, machine, standing, subnets.get(machine_id), seen, ttl)
            )
    return rows


def _subnets(registry: Registry) -> dict[str, str]:
    """machine id -> the CIDR of the subnet it leases."""
    out: dict[str, str] = {}
    plen = len(registry.ks.subnets)
    for value, meta in registry.client.get_prefix(registry.ks.subnets):
        try:
            holder = json.loads(value)["machine_id"]
        except (ValueError, KeyError, TypeError):
            continue  # a record the overlay itself would refuse: not a machine's
        if isinstance(holder, str):
            out[holder] = segment_to_cidr(meta.key.decode()[plen:])
    return out


def _heard(
    registry: Registry, machine: Machine | None, now: float
) -> tuple[float | None, int | None]:
    if machine is None or not machine.lease_id:
        return None, None
    info = registry.client.get_lease_info(machine.lease_id)
    remaining, granted = int(info.TTL), int(info.grantedTTL)
    if remaining < 0:
        return None, None  # expired between the two reads
    return now - max(0, granted - remaining), granted
