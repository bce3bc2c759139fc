"""Removing a machine from the cluster on purpose: `vulcano machine remove ID`.

In order: mark the machine decommissioned (keyspace.machine_decommissioned, kept, on no
lease), so the engine places nothing there and moves its units at once (no grace, so
nothing reads as an outage); wait until every unit has left it and, where it can, runs
elsewhere; then take its record away (revoking its lease also takes its public-IP claim
and its reports) and release its overlay subnet. The marker stays: an agent still
running there is refused when it tries to register again, and stops.

A timeout leaves the machine marked and in place (its units keep moving); running the
command again finishes the job. Nothing changes for an id the cluster does not know.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from container.services.cluster import Cluster
from container.services.errors import MachineNotFound, WaitTimedOut
from container.services.states import unit_standing
from vulcano import policy
from vulcano.keyspace import segment_to_cidr
from vulcano.records import DesiredState, UnitSpec, UnitState
from vulcano.registry import Registry


@dataclass(frozen=True)
class Move:
    """Where a unit that was on the machine stands: ``done`` when it needs no more wait."""

    unit: str
    done: bool
    note: str  # "running on <id>", "cannot be placed: <reason>", "waiting", ...
    machine_id: str | None = None  # the machine it moved to


OnMove = Callable[[Move], None]


def _ignore(_: Move) -> None:
    pass


@dataclass
class Removal:
    """What removing a machine did."""

    machine_id: str
    moves: dict[str, Move] = field(default_factory=dict)
    subnets: list[str] = field(default_factory=list)  # the subnets released
    hostname: str = ""  # its node's name: whose certificates a TLS cluster revokes


def resolve(cluster: Cluster, given: str) -> str:
    """The machine a (full or unique leading part of an) id names; MachineNotFound if none."""
    with cluster.registry() as registry:
        known = _known_machines(registry)
    if given in known:
        return given
    matches = sorted(m for m in known if given and m.startswith(given))
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise MachineNotFound(f"machine id {given} is ambiguous: {', '.join(matches[:5])}")
    raise MachineNotFound(f"no machine {given} in the cluster (see `vulcano list-machines`)")


def remove_machine(
    cluster: Cluster,
    given: str,
    *,
    timeout: float = policy.MACHINE_REMOVE_WAIT_SECONDS,
    on_move: OnMove = _ignore,
    poll_interval: float = policy.UNIT_COMMAND_POLL_INTERVAL,
) -> Removal:
    """Decommission a machine: its units move first, then its record and subnet go."""
    cluster.audit_ready()
    machine_id = resolve(cluster, given)
    with cluster.registry() as registry:
        on_it = sorted(u for u, ms in registry.placements().items() if machine_id in ms)
        on_it += sorted(
            s.name
            for s in registry.machine_states()
            if s.machine_id == machine_id and s.name not in on_it
        )
        hostname = next((m.hostname for m in registry.machines() if m.id == machine_id), "")
        marked = _mark(registry, machine_id, cluster, hostname)
        hostname = hostname or _marked_hostname(registry, machine_id)
    if marked:
        shown = ", ".join(on_it[:20]) + (", ..." if len(on_it) > 20 else "")
        cluster.record(
            "machine-decommission",
            machine_id,
            detail=f"{len(on_it)} unit(s) to move" + (f": {shown}" if on_it else ""),
        )
    removal = Removal(machine_id, hostname=hostname)
    deadline = time.monotonic() + timeout
    last: dict[str, Move] = {}
    while True:
        with cluster.registry() as registry:
            specs = registry.specs()
            placements = registry.placements()
            reports = registry.machine_states()
        moves = {u: _standing(u, machine_id, specs.get(u), placements, reports) for u in on_it}
        for unit, move in moves.items():
            if last.get(unit) != move:
                on_move(move)
        last = moves
        if all(m.done for m in moves.values()):
            break
        if time.monotonic() >= deadline:
            pending = [u for u, m in moves.items() if not m.done]
            raise WaitTimedOut(
                f"timed out after {timeout:.0f}s waiting for {', '.join(pending[:5])} to leave "
                f"machine {machine_id}; it is marked decommissioned and its units keep "
                "moving: run `vulcano machine remove` again to finish"
            )
        time.sleep(poll_interval)
    removal.moves = last
    with cluster.registry() as registry:
        _remove_record(registry, machine_id)
        removal.subnets = _release_subnets(registry, machine_id)
    moved = [f"{u} {m.note}" for u, m in removal.moves.items()]
    detail = f"{len(moved)} unit(s): " + "; ".join(moved) if moved else "no units"
    if removal.subnets:
        detail += "; released subnet " + ", ".join(removal.subnets)
    cluster.record("machine-remove", machine_id, detail=detail)
    return removal


def _known_machines(registry: Registry) -> set[str]:
    """Machines with a record, placements, reports or a subnet: what remove can act on."""
    known = {m.id for m in registry.machines()}
    known |= {m for ms in registry.placements().values() for m in ms}
    known |= {s.machine_id for s in registry.machine_states() if s.machine_id}
    known |= {lease["machine_id"] for lease, _ in _subnet_leases(registry)}
    return known


def _mark(registry: Registry, machine_id: str, cluster: Cluster, hostname: str) -> bool:
    """Write the decommissioned marker; False when an earlier run had written it."""
    by = str(cluster.actor) if cluster.actor is not None else ""
    value = json.dumps(
        {"machine_id": machine_id, "at": time.time(), "by": by, "hostname": hostname}
    )
    key = registry.ks.machine_decommissioned(machine_id)
    t = registry.client.transactions
    # a second run keeps the first marker
    ok, _ = registry.client.transaction(
        compare=[t.version(key) == 0], success=[t.put(key, value)], failure=[]
    )
    return bool(ok)


def _marked_hostname(registry: Registry, machine_id: str) -> str:
    """The hostname an earlier run recorded in the marker ("" when none)."""
    value, _ = registry.client.get(registry.ks.machine_decommissioned(machine_id))
    try:
        found = json.loads(value or b"{}").get("hostname", "")
    except (ValueError, AttributeError):
        return ""
    return found if isinstance(found, str) else ""


def _standing(
    unit: str,
    machine_id: str,
    spec: UnitSpec | None,
    placements: dict[str, list[str]],
    reports: list[UnitState],
) -> Move:
    """Has ``unit`` left ``machine_id``, and where does it stand elsewhere?"""
    mine = [r for r in reports if r.name == unit]
    if machine_id in placements.get(unit, []) or any(r.machine_id == machine_id for r in mine):
        return Move(unit, False, f"leaving {machine_id}")
    if spec is None:
        return Move(unit, True, "destroyed meanwhile")
    if spec.options.global_:
        return Move(unit, True, f"left {machine_id} (global: it runs on the others)")
    if spec.desired == DesiredState.INACTIVE:
        return Move(unit, True, f"left {machine_id}")
    elsewhere = [m for m in placements.get(unit, []) if m != machine_id]
    if not elsewhere:
        reason = next((r.reason for r in mine if r.machine_id is None and r.reason), "")
        if reason:
            return Move(unit, True, f"cannot be placed: {reason}")
        return Move(unit, False, "waiting for a machine")
    where = unit_standing(spec.desired, [r for r in mine if r.machine_id])
    if where.reached:
        verb = "running" if spec.desired == DesiredState.LAUNCHED else "loaded"
        return Move(unit, True, f"{verb} on {elsewhere[0]}", elsewhere[0])
    if where.failed:
        return Move(unit, True, f"moved to {elsewhere[0]}, where it {where.note}", elsewhere[0])
    return Move(unit, False, f"moving to {elsewhere[0]} ({where.note})", elsewhere[0])


def _remove_record(registry: Registry, machine_id: str) -> None:
    """Delete the machine's record: revoke its lease (the IP claim and reports go too)."""
    client, ks = registry.client, registry.ks
    _, meta = client.get(ks.machine(machine_id))
    if meta is not None and meta.lease_id:
        client.revoke_lease(meta.lease_id)
    elif meta is not None:
        client.delete(ks.machine(machine_id))
    for value, ip_meta in client.get_prefix(ks.machine_ips):
        if value.decode() == machine_id:  # a claim on no lease (or another one)
            client.delete(ip_meta.key.decode())
    client.delete(ks.machine_restarting(machine_id))


def _subnet_leases(registry: Registry) -> list[tuple[dict[str, Any], Any]]:
    out = []
    for value, meta in registry.client.get_prefix(registry.ks.subnets):
        try:
            record = json.loads(value)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("machine_id"), str):
            out.append((record, meta))
    return out


def _release_subnets(registry: Registry, machine_id: str) -> list[str]:
    """Give back the machine's overlay subnets (and the sandbox addresses on their lease)."""
    client, ks = registry.client, registry.ks
    released = []
    plen = len(ks.subnets)
    for record, meta in _subnet_leases(registry):
        if record["machine_id"] != machine_id:
            continue
        key = meta.key.decode()
        if meta.lease_id:
            client.revoke_lease(meta.lease_id)
        else:
            t = client.transactions
            client.transaction(
                compare=[t.mod(key) == meta.mod_revision], success=[t.delete(key)], failure=[]
            )
        released.append(segment_to_cidr(key[plen:]))
    return released
