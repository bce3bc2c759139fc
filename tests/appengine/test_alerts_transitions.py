"""transitions(): one notice per flip between healthy and not, table-driven, no I/O."""

from __future__ import annotations

import pytest

from appengine.alert_rules import Change, is_unreachable, reachability, transitions
from vulcano.heartbeat import ClusterSummary, MachineHealth, MachineSummary, UnitSummary

UP, LATE, DOWN, GONE = (
    MachineHealth.UP,
    MachineHealth.LATE,
    MachineHealth.DOWN,
    MachineHealth.DECOMMISSIONED,
)
T = 1_800_000_000.0


def summary(
    seq: int, machines: dict[str, MachineHealth], units: dict[str, str] | None = None
) -> ClusterSummary:
    return ClusterSummary(
        "prod",
        seq,
        T + seq,
        60.0,
        machines=[MachineSummary(m, h, T) for m, h in machines.items()],
        units=[UnitSummary(n, "m1", a) for n, a in (units or {}).items()],
    )


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (UP, DOWN, [Change.MACHINE_DOWN]),
        (LATE, DOWN, [Change.MACHINE_DOWN]),
        (DOWN, UP, [Change.MACHINE_UP]),
        (DOWN, LATE, [Change.MACHINE_UP]),
        (UP, LATE, []),
        (LATE, UP, []),
        (UP, UP, []),
        (DOWN, DOWN, []),
        (UP, GONE, []),
        (DOWN, GONE, []),
        (GONE, DOWN, []),
        (GONE, UP, []),
    ],
)
def test_machine_flips(before: MachineHealth, after: MachineHealth, expected: list[Change]) -> None:
    found = transitions(summary(1, {"m1": before}), summary(2, {"m1": after}))
    assert [t.change for t in found] == expected


def test_the_first_summary_and_new_machines_never_alert() -> None:
    assert transitions(None, summary(1, {"m1": DOWN})) == []
    assert transitions(summary(1, {}), summary(2, {"m1": UP, "m2": DOWN})) == []


def test_a_machine_missing_from_the_new_summary_says_nothing() -> None:
    assert transitions(summary(1, {"m1": UP}), summary(2, {})) == []


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ("active", "failed", [Change.UNIT_FAILED]),
        ("inactive", "failed", [Change.UNIT_FAILED]),
        ("failed", "active", [Change.UNIT_RECOVERED]),
        ("failed", "inactive", [Change.UNIT_RECOVERED]),
        ("active", "inactive", []),
        ("failed", "failed", []),
        ("activating", "active", []),
    ],
)
def test_unit_flips(before: str, after: str, expected: list[Change]) -> None:
    found = transitions(
        summary(1, {"m1": UP}, {"web": before}), summary(2, {"m1": UP}, {"web": after})
    )
    assert [t.change for t in found] == expected


def test_a_unit_on_a_decommissioned_machine_never_alerts() -> None:
    found = transitions(
        summary(1, {"m1": UP}, {"web": "active"}), summary(2, {"m1": GONE}, {"web": "failed"})
    )
    assert found == []


def test_a_transition_names_its_subject_and_states() -> None:
    (found,) = transitions(summary(1, {"m1": UP}), summary(2, {"m1": DOWN}))
    assert (found.cluster, found.subject, found.was, found.now, found.at) == (
        "prod",
        "m1",
        "up",
        "down",
        T + 2,
    )
    assert not found.recovery and "DOWN" in found.title


@pytest.mark.parametrize(
    ("was", "now", "expected"),
    [
        (False, True, [Change.CLUSTER_UNREACHABLE]),
        (True, False, [Change.CLUSTER_REPORTING]),
        (False, False, []),
        (True, True, []),
    ],
)
def test_cluster_reachability(was: bool, now: bool, expected: list[Change]) -> None:
    assert [t.change for t in reachability("prod", was, now, T)] == expected


def test_unreachable_after_three_missed_intervals() -> None:
    assert not is_unreachable(T, 60.0, T + 180.0)
    assert is_unreachable(T, 60.0, T + 180.5)
