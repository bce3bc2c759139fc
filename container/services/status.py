"""Where each unit stands (status): its spec, every machine's report, its latest output."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from container.services.checks import check_states
from container.services.cluster import Cluster
from container.services.errors import UnitNotFound
from container.services.listings import UnitOnMachine
from container.services.machines import by_id
from vulcano.records import UnitSpec, UnitState


@dataclass(frozen=True)
class UnitStatus:
    """One unit's status: one entry per machine reporting on it (or one with no report)."""

    name: str
    spec: UnitSpec
    instances: list[UnitOnMachine]
    journal: list[str]  # its last lines of output, oldest first

    @property
    def active(self) -> bool:
        """Active on every machine that has it (and some machine has it)."""
        return all(i.state is not None and i.state.active == "active" for i in self.instances)


def unit_statuses(cluster: Cluster, names: Iterable[str], lines: int) -> Iterator[UnitStatus]:
    """Each named unit's status with its last ``lines`` lines of output, in order.

    A generator, so a face can show the units before a later one turns out not to be
    submitted (UnitNotFound).
    """
    with cluster.registry() as registry:
        machines = by_id(registry.machines())
        reports = registry.machine_states()
        checked = check_states(registry)
        for name in names:
            spec = registry.spec(name)
            if spec is None:
                raise UnitNotFound(f"unit {name} is not submitted")
            mine: list[UnitState | None] = [r for r in reports if r.name == name] or [None]
            instances = [
                UnitOnMachine(
                    name,
                    spec,
                    state,
                    machines.get(state.machine_id) if state and state.machine_id else None,
                    checked.get((name, state.machine_id)) if state and state.machine_id else None,
                )
                for state in mine
            ]
            journal = registry.journal(name)
            yield UnitStatus(name, spec, instances, journal[-lines:] if lines > 0 else [])
