"""Which machines a command goes to: by machine id (full or short), by unit, by metadata.

A machine is reached at its public IP (the ssh config may rename, re-port or jump to
it), its host keys pinned from its machine record.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence

from container.services.cluster import Cluster
from container.ssh.destinations import Destination, Endpoint, parse_destination, resolve
from container.ssh.errors import UnknownTarget
from container.ssh.hostkeys import HostKey
from container.ssh.settings import SSHSettings
from vulcano import unitnames
from vulcano.records import Machine, short_id

log = logging.getLogger(__name__)


def find_machine(machines: Sequence[Machine], ident: str) -> Machine:
    """The machine whose id is ``ident`` or starts with it (a short id, '...' allowed)."""
    wanted = ident.removesuffix("...")
    exact = [m for m in machines if m.id == wanted]
    if exact:
        return exact[0]
    found = [m for m in machines if wanted and m.id.startswith(wanted)]
    if len(found) == 1:
        return found[0]
    if found:
        ids = ", ".join(short_id(m.id) for m in found)
        raise UnknownTarget(f"machine id {ident!r} is ambiguous: it starts {ids}")
    raise UnknownTarget(f"no machine {ident!r} in the cluster (see `vulcano list-machines`)")


def unit_machine(
    cluster: Cluster, machines: Sequence[Machine], name: str, given: str | None = None
) -> Machine:
    """The machine a unit is placed on (the first, for a global unit)."""
    with cluster.registry() as registry:
        if registry.spec(name) is None:
            raise UnknownTarget(
                f"no machine {given or name!r} and no unit {name} in the cluster "
                "(see `vulcano list-machines`, `vulcano list-units`)"
            )
        placed = sorted(
            r.machine_id for r in registry.machine_states() if r.name == name and r.machine_id
        )
    by_id = {m.id: m for m in machines}
    for machine_id in placed:
        if machine_id in by_id:
            return by_id[machine_id]
    raise UnknownTarget(f"unit {name} is not on any machine of the cluster now")


def ssh_target(cluster: Cluster, name: str) -> Machine:
    """MACHINE|UNIT as `vulcano ssh` takes it: a machine id first, else a unit's machine."""
    with cluster.registry() as registry:
        machines = registry.machines()
    try:
        return find_machine(machines, name)
    except UnknownTarget as not_machine:
        try:
            unit = unitnames.mangle(name)
        except ValueError:
            raise not_machine from None
        return unit_machine(cluster, machines, unit, name)


def select_machines(
    machines: Sequence[Machine],
    *,
    everything: bool = False,
    ids: Iterable[str] = (),
    metadata: dict[str, list[str]] | None = None,
) -> list[Machine]:
    """--all, --machine ID..., or --metadata k=v (a key's values OR'd, keys AND'd), by id."""
    if everything:
        chosen = list(machines)
    elif metadata:
        chosen = [
            m
            for m in machines
            if all(m.metadata.get(k) in values for k, values in metadata.items())
        ]
    else:
        chosen = []
        for ident in ids:
            machine = find_machine(machines, ident)
            if machine not in chosen:
                chosen.append(machine)
    return sorted(chosen, key=lambda m: m.id)


def pinned_keys(machine: Machine) -> list[HostKey]:
    """The host keys a machine's record published (lines that do not parse are skipped)."""
    keys = []
    for line in machine.ssh_host_keys:
        try:
            keys.append(HostKey.from_line(line))
        except ValueError:
            log.warning("machine %s publishes a host key we cannot read", machine.id)
    return keys


def machine_endpoint(
    machine: Machine, settings: SSHSettings, port: int | None = None, tunnel: str | None = None
) -> Endpoint:
    """Where to reach a machine: its public IP through the ssh config, its keys pinned.

    With a ``tunnel`` host (``--tunnel``), a machine the ssh config gives no ProxyJump is
    reached through the tunnel host, as fleetctl's ssh does.
    """
    if not machine.public_ip:
        raise UnknownTarget(f"machine {machine.id} has no public IP in its record")
    endpoint = resolve(
        Destination(machine.public_ip, None, port),
        settings.ssh_config,
        username=settings.username,
        default_user=settings.default_user,
        name=f"machine {short_id(machine.id)} ({machine.public_ip})",
        pinned=pinned_keys(machine),
    )
    if tunnel and endpoint.jump is None:
        destination = parse_destination(tunnel, "--tunnel")
        jump = resolve(
            destination,
            settings.ssh_config,
            username=settings.username,
            default_user=settings.default_user,
            name=f"tunnel host {destination}",
        )
        endpoint = dataclasses.replace(endpoint, jump=jump)
    return endpoint
