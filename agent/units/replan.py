"""The engine's plan after machines went or units came, placing only what needs it.

A full plan (agent/units/plan.py) asks the scheduler about every unit: with 100,000
units that is seconds, and a machine's failover waits for it. `plan_remembered` makes
the same plan and keeps what it was made from (a `Memo`); `replan` then answers the
next question from it when the memo shows that nothing else changed than machines
going away, units coming, and units' states or content with the same [X-Fleet]
options: every unit planned before is still to be placed, every machine left has the
record it was planned on, and etcd holds exactly what the memo's plan wrote. The
scheduler's `replan` places only the units left without a machine, and the writes
are the difference between the two placements. It returns what a full plan would
(tests/agent/test_replan.py proves it against the full planner), or None when it
cannot tell (plan from scratch then).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from agent import policy
from agent.units import plan, scheduler
from agent.units.plan import EnginePlan, Placements
from vulcano.records import Assignment, Machine, UnitSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Memo:
    """A plan and what it was made from."""

    wanted: dict[str, UnitSpec]  # the units it placed (plan.wanted_units)
    machines: dict[str, Machine]  # the machines it could place on, by id
    desired: dict[tuple[str, str], str]  # the placements it makes etcd hold
    requests: list[scheduler.UnitRequest]
    placement: scheduler.Plan


def plan_remembered(
    specs: Mapping[str, UnitSpec],
    machines: Mapping[str, Machine],
    placed: Placements,
    reasons: Mapping[str, str],
    ops_per_txn: int = policy.ENGINE_OPS_PER_TXN,
) -> tuple[EnginePlan, Memo]:
    """`plan.plan`, and the memo to replan from."""
    wanted = plan.wanted_units(specs)
    requests = plan.requests_of(wanted)
    live = plan.eligible(machines)
    placement = scheduler.plan(requests, live, plan.current_of(wanted, placed))
    desired = plan.as_assignments(wanted, placement)
    actions = EnginePlan(
        plan.assignment_batches(placed, desired, machines, ops_per_txn),
        plan.reason_batches(reasons, placement.reasons, ops_per_txn),
    )
    return actions, Memo(wanted, {m.id: m for m in live}, desired, requests, placement)


def replan(
    memo: Memo,
    specs: Mapping[str, UnitSpec],
    machines: Mapping[str, Machine],
    placed: Placements,
    reasons: Mapping[str, str],
    ops_per_txn: int = policy.ENGINE_OPS_PER_TXN,
) -> tuple[EnginePlan, Memo] | None:
    """What `plan.plan` would return, and the next memo; None when the memo cannot tell."""
    live = plan.eligible(machines)
    # a machine's lease is not the planner's business (its record is): compare=False
    came = next((m for m in live if memo.machines.get(m.id) != m), None)
    if came is not None:
        log.debug("full plan: machine %s came or changed", came.id)
        return None
    if placed != memo.desired:
        log.debug("full plan: etcd holds other placements than the last plan wrote")
        return None
    wanted = plan.wanted_units(specs)
    if not memo.wanted.keys() <= wanted.keys():
        log.debug("full plan: a unit was destroyed or unloaded")
        return None
    changed = [n for n, s in wanted.items() if memo.wanted.get(n) is not s]
    added: list[scheduler.UnitRequest] = []
    for name in changed:
        was = memo.wanted.get(name)
        if was is None:
            added.append(scheduler.UnitRequest(name, wanted[name].options))
        elif was.options != wanted[name].options:
            log.debug("full plan: %s has new [X-Fleet] options", name)
            return None
    requests = memo.requests + added if added else memo.requests
    placement = scheduler.replan(requests, live, memo.placement)
    if placement is None:
        log.debug("full plan: Conflicts= or Replaces= in the plan")
        return None
    old = memo.placement

    def value(name: str) -> str:
        return Assignment.of(wanted[name]).to_json()

    # what a full plan would write: every placement new or with a new value, every
    # placement no longer wanted (the others are unchanged, and etcd holds them)
    puts: dict[tuple[str, str], str] = {}
    deletes: list[tuple[str, str]] = []
    for name, machine in placement.targets.items():
        if old.targets.get(name) != machine:
            puts[(machine, name)] = value(name)
    for name, machine in old.targets.items():
        if placement.targets.get(name) != machine:
            deletes.append((machine, name))
    for name, targets in placement.global_targets.items():
        before, after = set(old.global_targets.get(name, ())), set(targets)
        puts.update({(m, name): value(name) for m in after - before})
        deletes.extend((m, name) for m in before - after)
    for name in changed:  # the same machines, but maybe a new Assignment to write
        for machine in placement.global_targets.get(name, ()) or (
            [placement.targets[name]] if name in placement.targets else []
        ):
            if memo.desired.get((machine, name)) != (v := value(name)):
                puts[(machine, name)] = v
    desired = dict(memo.desired)
    for key in deletes:
        del desired[key]
    desired.update(puts)
    actions = EnginePlan(
        plan.write_batches(dict(sorted(puts.items())), sorted(deletes), machines, ops_per_txn),
        plan.reason_batches(reasons, placement.reasons, ops_per_txn),
    )
    return actions, Memo(wanted, {m.id: m for m in live}, desired, requests, placement)
