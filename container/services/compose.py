"""A converted Compose project on the cluster: `compose up` and `compose down`.

``up`` starts the services level by level in dependency order (`Conversion.levels`),
through the same service functions `vulcano start` uses, and waits for each level to be
launched before the next: a dependency's address (its sandbox address on the overlay, or
its machine's) is known only then, and the next level's units are converted with it
(``--add-host NAME:ADDRESS``). ``down`` destroys the project's units in the reverse
order and waits until no machine reports any of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from container.compose import Conversion
from container.services import units, waiting
from container.services.cluster import Cluster
from container.services.errors import WaitTimedOut
from vulcano import policy
from vulcano.records import DesiredState, UnitSource

Convert = Callable[[Mapping[str, str]], Conversion]


def _sources(conversion: Conversion, services: tuple[str, ...]) -> list[UnitSource]:
    texts = {f.name: f.text for f in conversion.files}
    out: list[UnitSource] = []
    for name in services:
        su = conversion.service(name)
        out.append(UnitSource(su.unit, texts[su.unit]))
        out += [UnitSource(n) for n in su.starts if n != su.unit]
    return out


def address_of(cluster: Cluster, unit: str) -> str | None:
    """Where a launched unit is reached: its sandbox's address, else its machine's."""
    with cluster.registry() as registry:
        state = registry.states().get(unit)
        if state is None or not state.machine_id:
            return None
        if state.sandbox_ip:
            return state.sandbox_ip
        machines = {m.id: m for m in registry.machines()}
    machine = machines.get(state.machine_id)
    return machine.public_ip if machine and machine.public_ip else None


def _quiet(_: waiting.Progress) -> None:
    pass


def up(
    cluster: Cluster,
    convert: Convert,
    *,
    replace: bool = False,
    timeout: float = policy.UNIT_COMMAND_WAIT_SECONDS,
    on_progress: waiting.OnProgress | None = None,
) -> tuple[Conversion, dict[str, str]]:
    """Start every service, dependencies first: the conversion with every address known,
    and each service's address (its first unit's)."""
    addresses: dict[str, str] = {}
    conversion = convert(addresses)
    for level in conversion.levels:
        conversion = convert(addresses)
        sources = _sources(conversion, level)
        retried = waiting.failures_now(cluster, [s.name for s in sources])
        names = units.start(cluster, sources, replace=replace)
        waiting.wait_until(
            cluster,
            names,
            DesiredState.LAUNCHED,
            timeout=timeout,
            retried=retried,
            on_progress=on_progress or _quiet,
        )
        for service in level:
            first = conversion.service(service).starts[0]
            address = address_of(cluster, first)
            if address:
                addresses[service] = address
    return convert(addresses), addresses


def unit_names(conversion: Conversion) -> list[str]:
    """The project's units, dependents first: instances, then their templates."""
    names: list[str] = []
    for level in reversed(conversion.levels):
        for service in level:
            su = conversion.service(service)
            names += [n for n in su.starts if n != su.unit]
            names.append(su.unit)
    return names


def down(
    cluster: Cluster, conversion: Conversion, *, timeout: float = policy.UNIT_COMMAND_WAIT_SECONDS
) -> list[str]:
    """Destroy the project's units (those submitted) and wait until none is reported."""
    with cluster.registry() as registry:
        submitted = set(registry.specs())
    names = [n for n in unit_names(conversion) if n in submitted]
    # instances go first, so no template is left behind an instance that still needs it
    for name in names:
        units.destroy(cluster, [name])
    deadline = time.monotonic() + timeout
    while True:
        with cluster.registry() as registry:
            left = sorted({s.name for s in registry.machine_states()} & set(names))
        if not left:
            return names
        if time.monotonic() >= deadline:
            raise WaitTimedOut(
                f"timed out after {timeout:.0f}s waiting for {', '.join(left[:5])} to stop"
            )
        time.sleep(policy.UNIT_COMMAND_POLL_INTERVAL)
