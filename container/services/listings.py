"""The rows of the unit lists: list-units (a unit per machine) and list-unit-files.

Records, not text: each face decides how to show a machine, a hash or a missing value.
"""

from __future__ import annotations

from dataclasses import dataclass

from container.services.checks import check_states
from container.services.cluster import Cluster
from container.services.machines import by_id
from container.services.states import current_state
from vulcano import unitnames
from vulcano.endpoints import CheckStates
from vulcano.records import DesiredState, Machine, UnitSpec, UnitState


@dataclass(frozen=True)
class UnitOnMachine:
    """A unit as one machine reports it, or as no machine has it yet (``state`` None)."""

    name: str
    spec: UnitSpec | None  # None: a report outlived its unit
    state: UnitState | None
    machine: Machine | None  # the record of state.machine_id, while it is announced
    checks: CheckStates | None = None  # that machine's check results for it, if any

    @property
    def machine_id(self) -> str | None:
        return self.state.machine_id if self.state is not None else None


@dataclass(frozen=True)
class SubmittedUnit:
    """A submitted unit file, where the engine put it, and fleet's STATE of it."""

    spec: UnitSpec
    state: UnitState | None  # the best report on it (an active one, else the latest)
    current: DesiredState | None  # None for a Global unit: it has one per machine
    target_id: str | None  # the machine it is assigned to; None if unplaced or Global
    target: Machine | None


def list_units(cluster: Cluster) -> list[UnitOnMachine]:
    """Units the cluster runs or tries to: every machine's report, and units not yet placed."""
    with cluster.registry() as registry:
        specs = registry.specs()
        reports = registry.machine_states()
        machines = by_id(registry.machines())
        checked = check_states(registry)
    by_unit: dict[str, list[UnitState | None]] = {}
    for report in reports:
        by_unit.setdefault(report.name, []).append(report)
    for name, spec in specs.items():
        if (
            spec.desired != DesiredState.INACTIVE
            and name not in by_unit
            and not unitnames.is_template(name)
        ):
            by_unit[name] = [None]
    return [
        _on_machine(name, specs.get(name), state, machines, checked)
        for name in sorted(by_unit)
        for state in by_unit[name]
    ]


def list_unit_files(cluster: Cluster) -> list[SubmittedUnit]:
    """Every submitted unit, by name."""
    with cluster.registry() as registry:
        specs = registry.specs()
        states = registry.states()
        placed = registry.placements()
        machines = by_id(registry.machines())
    rows = []
    for name, spec in sorted(specs.items()):
        state = states.get(name)
        targets = [] if spec.options.global_ else placed.get(name, [])
        target_id = targets[0] if targets else None
        rows.append(
            SubmittedUnit(
                spec=spec,
                state=state,
                current=None if spec.options.global_ else current_state(state),
                target_id=target_id,
                target=machines.get(target_id) if target_id else None,
            )
        )
    return rows


def _on_machine(
    name: str,
    spec: UnitSpec | None,
    state: UnitState | None,
    machines: dict[str, Machine],
    checked: dict[tuple[str, str], CheckStates] | None = None,
) -> UnitOnMachine:
    machine_id = state.machine_id if state is not None else None
    machine = machines.get(machine_id) if machine_id else None
    checks = (checked or {}).get((name, machine_id)) if machine_id else None
    return UnitOnMachine(name, spec, state, machine, checks)
