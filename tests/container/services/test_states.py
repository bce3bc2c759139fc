"""fleet's state rules as tables: a unit's current state, and whether it reached the one asked."""

from __future__ import annotations

import pytest

from container.services.states import (
    Standing,
    current_state,
    global_machines,
    standing,
    unit_standing,
)
from vulcano.records import DesiredState, Machine, UnitSpec, UnitState
from vulcano.units import FleetOptions

LAUNCHED, LOADED, INACTIVE = DesiredState.LAUNCHED, DesiredState.LOADED, DesiredState.INACTIVE


def st(active: str, sub: str = "x", machine: str | None = "m1", **kw: str) -> UnitState:
    return UnitState("u.service", machine, kw.pop("load", "loaded"), active, sub, 0.0, **kw)


def reason(text: str) -> UnitState:
    """The engine's word on a unit no machine has."""
    return UnitState("u.service", reason=text)


NOT_FOUND = st("inactive", "dead", load="not-found")


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (None, INACTIVE),
        (st("active", "running", machine=None), INACTIVE),  # on no machine
        (st("active", "running"), LAUNCHED),
        (st("activating", "start"), LAUNCHED),
        (st("deactivating", "stop"), LAUNCHED),
        (st("inactive", "dead"), LOADED),
        (st("failed", "failed"), LOADED),
        (NOT_FOUND, INACTIVE),
    ],
)
def test_current_state(state: UnitState | None, expected: DesiredState) -> None:
    assert current_state(state) == expected


@pytest.mark.parametrize(
    ("desired", "state", "expected"),
    [
        (LAUNCHED, None, Standing(False, "waiting")),
        (LAUNCHED, st("active", "running"), Standing(True, "active (running)", "m1")),
        (LAUNCHED, st("activating", "start"), Standing(False, "activating (start)", "m1")),
        (
            LAUNCHED,
            st("failed", "failed", reason="exit 1"),
            Standing(False, "failed (failed) exit 1", "m1"),
        ),
        (LAUNCHED, reason("no machine fits"), Standing(False, "no machine fits")),
        (LOADED, st("inactive", "dead"), Standing(True, "inactive (dead)", "m1")),
        (LOADED, st("active", "running"), Standing(False, "active (running)", "m1")),
        (LOADED, NOT_FOUND, Standing(False, "inactive (dead)", "m1")),
        (INACTIVE, None, Standing(True, "waiting")),
        (INACTIVE, reason("unscheduled"), Standing(True, "unscheduled")),
        (INACTIVE, st("inactive", "dead"), Standing(False, "inactive (dead)", "m1")),
    ],
)
def test_standing(desired: DesiredState, state: UnitState | None, expected: Standing) -> None:
    assert standing(desired, state) == expected


def test_only_a_failed_start_is_a_failure() -> None:
    assert standing(LAUNCHED, st("failed", "failed")).failed
    assert not standing(LAUNCHED, st("activating", "start")).failed
    assert not standing(LAUNCHED, st("active", "running")).failed


def test_a_unit_on_several_machines_reaches_only_when_every_machine_has() -> None:
    one = UnitState("g.service", "m1", "loaded", "active", "running")
    two = UnitState("g.service", "m2", "loaded", "activating", "start")
    assert unit_standing(LAUNCHED, [one, two]) == Standing(False, "activating (start)", "m1")
    assert unit_standing(LAUNCHED, [one]) == Standing(True, "active (running)", "m1")


def test_a_unit_no_machine_has_stands_where_its_reason_says() -> None:
    reason = UnitState("u.service", reason="no machine matches MachineMetadata region=ap")
    assert unit_standing(LAUNCHED, [reason]).note == "no machine matches MachineMetadata region=ap"
    assert unit_standing(LAUNCHED, []) == Standing(False, "waiting")


def test_a_global_unit_waits_for_every_expected_machine_even_one_that_never_reported() -> None:
    one = UnitState("g.service", "m1", "loaded", "active", "running")
    assert unit_standing(LAUNCHED, [one], expected=["m1", "m2"]) == Standing(
        False, "waiting for machine m2...", "m1"
    )
    assert unit_standing(LAUNCHED, [], expected=["m1"]) == Standing(False, "waiting")
    two = UnitState("g.service", "m2", "loaded", "activating", "start")
    assert unit_standing(LAUNCHED, [one, two], expected=["m1", "m2", "m3"]) == Standing(
        False, "activating (start)", "m1"
    )
    assert unit_standing(LAUNCHED, [one], expected=["m1"]) == Standing(
        True, "active (running)", "m1"
    )
    failed = UnitState("g.service", "m1", "loaded", "failed", "failed", reason="exit 1")
    assert unit_standing(LAUNCHED, [failed], expected=["m1", "m2"]).failed


def test_a_global_unit_expects_the_live_machines_its_metadata_matches() -> None:
    spec = UnitSpec(
        "g.service",
        "h",
        options=FleetOptions(global_=True, machine_metadata=(("region", "eu"), ("region", "us"))),
    )
    machines = [
        Machine("a1", metadata={"region": "eu"}),
        Machine("b2", metadata={"region": "ap"}),
        Machine("c3", metadata={"region": "us"}),
        Machine("d4", metadata={"region": "eu"}),
    ]
    assert global_machines(spec, machines, {"d4"}) == ["a1", "c3"]
    assert global_machines(UnitSpec("u.service", "h"), machines) == []
    assert global_machines(None, machines) == []
