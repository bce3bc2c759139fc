"""The engine's plan, pure: from what etcd holds to the writes that make it right.

`plan(specs, machines, placed, reasons)` asks the scheduler where every unit that is
loaded or launched should be, and returns the difference as data: assignment writes
batched into transactions (every delete before any put, so a unit that moves is gone
from its old machine before it appears on the new one; a machine's writes kept
together, so each transaction compares few machine records), then the writes of the
reasons why units have no machine. The engine (agent/units/engine.py) executes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agent import policy
from agent.units import scheduler
from vulcano import unitnames
from vulcano.records import Assignment, DesiredState, Machine, UnitSpec

# (machine id, unit name) → the Assignment JSON at schedule/<machine>/<unit>
Placements = Mapping[tuple[str, str], str]


@dataclass(frozen=True, order=True)
class AssignmentWrite:
    """Put ``value`` at schedule/<machine>/<unit>, or delete it (``value`` None)."""

    machine: str
    unit: str
    value: str | None


@dataclass(frozen=True)
class AssignmentBatch:
    """One transaction: its writes, and the machine records it requires unchanged.

    ``machine_leases`` holds (machine, lease id) for every machine the batch touches
    that has a record: a placement is written only while that record lives.
    """

    writes: tuple[AssignmentWrite, ...]
    machine_leases: tuple[tuple[str, int], ...]


@dataclass(frozen=True, order=True)
class ReasonWrite:
    """Put ``reason`` at unit-reasons/<unit>, or delete it (``reason`` None)."""

    unit: str
    reason: str | None


@dataclass(frozen=True)
class EnginePlan:
    """What the engine writes, in order: assignment batches, then reason batches."""

    assignments: tuple[AssignmentBatch, ...] = ()
    reasons: tuple[tuple[ReasonWrite, ...], ...] = ()

    @property
    def empty(self) -> bool:
        return not self.assignments and not self.reasons


def desired_placements(
    specs: Mapping[str, UnitSpec],
    machines: Mapping[str, Machine],
    placed: Placements,
) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    """Where every unit should be (as Assignment JSON) and why some have no machine.

    Only units that are loaded or launched, and no templates, are placed; only machines
    read on a lease can take them. A non-global unit stays where it is when it still fits.
    """
    wanted = wanted_units(specs)
    placement = scheduler.plan(requests_of(wanted), eligible(machines), current_of(wanted, placed))
    return as_assignments(wanted, placement), placement.reasons


def wanted_units(specs: Mapping[str, UnitSpec]) -> dict[str, UnitSpec]:
    """The units that need a machine: loaded or launched, and not templates."""
    return {
        n: s
        for n, s in specs.items()
        # every template's name has an "@": the others need no parsing
        if s.desired != DesiredState.INACTIVE and not ("@" in n and unitnames.is_template(n))
    }


def current_of(wanted: Mapping[str, UnitSpec], placed: Placements) -> dict[str, str]:
    """Where each wanted non-global unit is placed now."""
    current: dict[str, str] = {}
    for machine, name in placed:
        spec = wanted.get(name)
        if spec is not None and not spec.options.global_:
            current[name] = machine
    return current


def requests_of(wanted: Mapping[str, UnitSpec]) -> list[scheduler.UnitRequest]:
    return [scheduler.UnitRequest(n, s.options) for n, s in wanted.items()]


def eligible(machines: Mapping[str, Machine]) -> list[Machine]:
    """The machines that can take units: those read on a lease."""
    return [m for m in machines.values() if m.lease_id]


def as_assignments(
    wanted: Mapping[str, UnitSpec], placement: scheduler.Plan
) -> dict[tuple[str, str], str]:
    """The placement as (machine, unit) → Assignment JSON."""
    desired: dict[tuple[str, str], str] = {}
    for name, machine in placement.targets.items():
        desired[(machine, name)] = Assignment.of(wanted[name]).to_json()
    for name, targets in placement.global_targets.items():
        for machine in targets:
            desired[(machine, name)] = Assignment.of(wanted[name]).to_json()
    return desired


def assignment_batches(
    placed: Placements,
    desired: Placements,
    machines: Mapping[str, Machine],
    ops_per_txn: int = policy.ENGINE_OPS_PER_TXN,
) -> tuple[AssignmentBatch, ...]:
    """The writes that turn ``placed`` into ``desired``, at most ``ops_per_txn`` a batch."""
    puts = {k: v for k, v in sorted(desired.items()) if placed.get(k) != v}
    return write_batches(puts, sorted(set(placed) - set(desired)), machines, ops_per_txn)


def write_batches(
    puts: Placements,
    deletes: list[tuple[str, str]],
    machines: Mapping[str, Machine],
    ops_per_txn: int = policy.ENGINE_OPS_PER_TXN,
) -> tuple[AssignmentBatch, ...]:
    """``puts`` (in their order) and ``deletes`` as batches: deletes first, by machine."""
    by_machine: dict[str, list[AssignmentWrite]] = {}
    for (machine, name), value in puts.items():
        by_machine.setdefault(machine, []).append(AssignmentWrite(machine, name, value))
    for machine, name in deletes:
        by_machine.setdefault(machine, []).append(AssignmentWrite(machine, name, None))
    batches: list[AssignmentBatch] = []
    for deleting in (True, False):
        writes: list[AssignmentWrite] = []
        touched: list[str] = []
        for machine, ops in by_machine.items():
            for op in ops:
                if (op.value is None) != deleting:
                    continue
                writes.append(op)
                if machine not in touched:
                    touched.append(machine)
                if len(writes) >= ops_per_txn:
                    batches.append(_batch(writes, touched, machines))
                    writes, touched = [], []
        if writes:
            batches.append(_batch(writes, touched, machines))
    return tuple(batches)


def _batch(
    writes: list[AssignmentWrite], touched: list[str], machines: Mapping[str, Machine]
) -> AssignmentBatch:
    leases = tuple((m, machines[m].lease_id) for m in touched if m in machines)
    return AssignmentBatch(tuple(writes), leases)


def reason_batches(
    written: Mapping[str, str],
    reasons: Mapping[str, str],
    ops_per_txn: int = policy.ENGINE_OPS_PER_TXN,
) -> tuple[tuple[ReasonWrite, ...], ...]:
    """The writes that turn the reasons in etcd (``written``) into ``reasons``."""
    ops = [ReasonWrite(n, r) for n, r in sorted(reasons.items()) if written.get(n) != r]
    ops += [ReasonWrite(n, None) for n in sorted(set(written) - set(reasons))]
    return tuple(tuple(ops[i : i + ops_per_txn]) for i in range(0, len(ops), ops_per_txn))


def plan(
    specs: Mapping[str, UnitSpec],
    machines: Mapping[str, Machine],
    placed: Placements,
    reasons: Mapping[str, str],
    ops_per_txn: int = policy.ENGINE_OPS_PER_TXN,
) -> EnginePlan:
    """Everything the engine must write so etcd holds the placements it should."""
    desired, why = desired_placements(specs, machines, placed)
    return EnginePlan(
        assignment_batches(placed, desired, machines, ops_per_txn),
        reason_batches(reasons, why, ops_per_txn),
    )
