"""fleet's state rules: what state a unit is actually in, and whether it got where asked.

Pure functions of the runners' reports (`UnitState`), so both faces and the tests read
the same rules without touching etcd.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from vulcano.records import DesiredState, Machine, UnitSpec, UnitState, short_id
from vulcano.units import metadata_matches


def current_state(state: UnitState | None) -> DesiredState:
    """fleet's STATE column: what the cluster actually has (inactive, loaded, launched)."""
    if state is None or state.machine_id is None:
        return DesiredState.INACTIVE
    if state.running:
        return DesiredState.LAUNCHED
    if state.load == "loaded":
        return DesiredState.LOADED
    return DesiredState.INACTIVE


@dataclass(frozen=True)
class Standing:
    """Where a unit stands against the state it was asked for."""

    reached: bool
    note: str  # a word on where it stands: "waiting", "activating (start)", a reason
    machine_id: str | None = None  # the (first) machine that has it
    unplaced: bool = False  # no machine has it, and the note is the engine's reason why

    @property
    def failed(self) -> bool:
        """Not there, and it will not get there by waiting: a start failed."""
        # a failed start reads "failed (<sub>) <reason>", and so may a reason saying so
        return not self.reached and self.note.startswith("failed")


def standing(desired: DesiredState, state: UnitState | None) -> Standing:
    """Has a unit, as one report shows it, reached ``desired``?"""
    if desired == DesiredState.LAUNCHED:
        if state is not None and state.active == "failed":
            note = f"failed ({state.sub}) {state.reason}".strip()
            return Standing(False, note, state.machine_id)
        ok = state is not None and state.machine_id is not None and state.active == "active"
    elif desired == DesiredState.LOADED:
        ok = (
            state is not None
            and state.machine_id is not None
            and state.active != "active"
            and state.load == "loaded"
        )
    else:
        ok = state is None or state.machine_id is None
    note = "waiting"
    if state is not None:
        note = state.reason or f"{state.active} ({state.sub})"
    return Standing(ok, note, state.machine_id if state is not None else None)


def unit_standing(
    desired: DesiredState, reports: Sequence[UnitState], expected: Sequence[str] = ()
) -> Standing:
    """Has a unit reached ``desired``, given every report on it (one per machine)?

    Every machine that has it (a Global unit has several) must have got there, and so
    must every machine in ``expected`` (a Global unit's matching machines), reported or
    not; a unit no machine has stands where its one report (the engine's reason) or
    nothing says.
    """
    placed = [r for r in reports if r.machine_id]
    if placed:
        checks = [standing(desired, r) for r in placed]
    else:
        checks = [standing(desired, reports[0] if reports else None)]
        if desired != DesiredState.INACTIVE and reports and reports[0].reason:
            return Standing(False, reports[0].reason, None, unplaced=True)
    failed = next((c for c in checks if c.failed), None)
    if failed is not None:
        return failed
    where = placed[0].machine_id if placed else None
    if not all(c.reached for c in checks):
        return Standing(False, next(c.note for c in checks if not c.reached), where)
    silent = sorted(set(expected) - {r.machine_id for r in placed})
    if silent:
        # every machine that reported got there; these have written nothing yet
        shown = ", ".join(short_id(m) for m in silent[:3])
        more = f" and {len(silent) - 3} more" if len(silent) > 3 else ""
        return Standing(False, f"waiting for machine {shown}{more}", where)
    return Standing(True, checks[0].note, where)


def global_machines(
    spec: UnitSpec | None,
    machines: Sequence[Machine],
    decommissioned: AbstractSet[str] = frozenset(),
) -> list[str]:
    """The machines a Global unit must reach: every live one matching MachineMetadata=.

    Empty for a unit that is not Global (its reports say where it is).
    """
    if spec is None or not spec.options.global_:
        return []
    required = spec.options.metadata_requirements()
    return sorted(
        m.id
        for m in machines
        if m.id not in decommissioned and metadata_matches(required, m.metadata)
    )
