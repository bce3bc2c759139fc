"""The engine's plan, as data: what it writes for (units, machines, placements, reasons)."""

from __future__ import annotations

import pytest

from agent.units.plan import (
    AssignmentBatch,
    AssignmentWrite,
    ReasonWrite,
    assignment_batches,
    desired_placements,
    plan,
    reason_batches,
)
from vulcano.records import Assignment, DesiredState, Machine, UnitSpec
from vulcano.units import FleetOptions

A = Machine("aaaaaaaa11", lease_id=11)
B = Machine("bbbbbbbb22", lease_id=22)
MACHINES = {A.id: A, B.id: B}


def spec(name: str, desired: DesiredState = DesiredState.LAUNCHED, **opts: object) -> UnitSpec:
    return UnitSpec(name, "h" * 40, desired, FleetOptions(**opts))  # type: ignore[arg-type]


def specs(*units: UnitSpec) -> dict[str, UnitSpec]:
    return {s.name: s for s in units}


def value(s: UnitSpec) -> str:
    return Assignment.of(s).to_json()


def test_nothing_to_write_when_everything_is_placed_as_it_should_be() -> None:
    web = spec("web.service")
    placed = {(A.id, "web.service"): value(web)}
    assert plan(specs(web), MACHINES, placed, {}).empty


def test_a_new_unit_goes_to_the_least_loaded_machine_comparing_its_record() -> None:
    old, new = spec("old.service"), spec("new.service")
    placed = {(A.id, "old.service"): value(old)}
    result = plan(specs(old, new), MACHINES, placed, {})
    assert result.assignments == (
        AssignmentBatch((AssignmentWrite(B.id, "new.service", value(new)),), ((B.id, 22),)),
    )
    assert result.reasons == ()


@pytest.mark.parametrize(
    ("desired", "name", "placed"),
    [
        (DesiredState.INACTIVE, "idle.service", False),
        (DesiredState.LOADED, "loaded.service", True),
        (DesiredState.LAUNCHED, "web@.service", False),  # a template is never placed
    ],
)
def test_only_loaded_or_launched_non_templates_are_placed(
    desired: DesiredState, name: str, placed: bool
) -> None:
    wanted, _ = desired_placements(specs(spec(name, desired)), MACHINES, {})
    assert bool(wanted) is placed


def test_machines_without_a_lease_take_no_units() -> None:
    unleased = Machine("cccccccc33")
    wanted, reasons = desired_placements(specs(spec("x.service")), {unleased.id: unleased}, {})
    assert wanted == {}
    assert reasons == {"x.service": "no machines in the cluster"}


def test_a_unit_that_still_fits_stays_where_it_is() -> None:
    web = spec("web.service")
    wanted, _ = desired_placements(specs(web), MACHINES, {(B.id, "web.service"): value(web)})
    assert wanted == {(B.id, "web.service"): value(web)}


def test_a_global_unit_goes_to_every_machine() -> None:
    agent = spec("agent.service", global_=True)
    wanted, _ = desired_placements(specs(agent), MACHINES, {})
    assert sorted(wanted) == [(A.id, "agent.service"), (B.id, "agent.service")]


def test_new_content_is_written_over_the_old_placement() -> None:
    old = spec("web.service")
    new = UnitSpec("web.service", "n" * 40, DesiredState.LAUNCHED)
    result = plan(specs(new), MACHINES, {(A.id, "web.service"): value(old)}, {})
    assert [w for b in result.assignments for w in b.writes] == [
        AssignmentWrite(A.id, "web.service", value(new))
    ]


def test_a_moving_unit_is_deleted_from_its_old_machine_first() -> None:
    pinned = spec("web.service", machine_id=B.id)
    placed = {(A.id, "web.service"): value(spec("web.service"))}
    result = plan(specs(pinned), MACHINES, placed, {})
    assert result.assignments == (
        AssignmentBatch((AssignmentWrite(A.id, "web.service", None),), ((A.id, 11),)),
        AssignmentBatch((AssignmentWrite(B.id, "web.service", value(pinned)),), ((B.id, 22),)),
    )


def test_a_departed_machine_is_not_compared_when_its_placements_are_deleted() -> None:
    web = spec("web.service")
    placed = {("gone0000", "web.service"): value(web)}
    result = plan(specs(web), MACHINES, placed, {})
    deletes, puts = result.assignments
    assert deletes == AssignmentBatch((AssignmentWrite("gone0000", "web.service", None),), ())
    assert [w.machine for w in puts.writes] == [A.id]


def test_writes_are_cut_into_transactions_keeping_each_machines_writes_together() -> None:
    desired = {(m, f"u{i}.service"): "v" for m in (A.id, B.id) for i in range(3)}
    batches = assignment_batches({}, desired, MACHINES, ops_per_txn=4)
    assert [len(b.writes) for b in batches] == [4, 2]
    assert batches[0].machine_leases == ((A.id, 11), (B.id, 22))
    assert batches[1].machine_leases == ((B.id, 22),)
    assert [w.machine for w in batches[0].writes] == [A.id] * 3 + [B.id]


def test_every_delete_comes_before_any_put() -> None:
    placed = {(A.id, "gone.service"): "v", (B.id, "gone.service"): "v"}
    desired = {(A.id, "new.service"): "v"}
    batches = assignment_batches(placed, desired, MACHINES, ops_per_txn=100)
    kinds = [w.value is None for b in batches for w in b.writes]
    assert kinds == [True, True, False]


def test_reasons_are_written_when_new_or_changed_and_cleared_once_placed() -> None:
    written = {"kept.service": "same", "changed.service": "old", "placed.service": "old"}
    reasons = {"kept.service": "same", "changed.service": "new", "new.service": "why"}
    assert reason_batches(written, reasons, ops_per_txn=2) == (
        (ReasonWrite("changed.service", "new"), ReasonWrite("new.service", "why")),
        (ReasonWrite("placed.service", None),),
    )


def test_an_unplaceable_unit_gets_its_reason_in_the_plan() -> None:
    pinned = spec("x.service", machine_id="zzzzzzzz99")
    result = plan(specs(pinned), MACHINES, {}, {})
    assert result.assignments == ()
    assert result.reasons == (
        (ReasonWrite("x.service", "no machine matches MachineID=zzzzzzzz99"),),
    )
