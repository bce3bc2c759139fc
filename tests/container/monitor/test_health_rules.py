"""The folding rules, without etcd: standing by age, restarts, limits of the installer."""

from __future__ import annotations

import pytest

from container import policy
from container.services import inventory, monitor
from vulcano.heartbeat import (
    MAX_SUMMARY_BYTES,
    ClusterSummary,
    MachineHealth,
    MachineSample,
    MachineSummary,
)
from vulcano.records import Machine, UnitState

NOW = 1_790_000_000.0


@pytest.mark.parametrize(
    ("age", "health"),
    [
        (0.0, MachineHealth.UP),
        (10.0, MachineHealth.UP),
        (10.1, MachineHealth.LATE),
        (30.0, MachineHealth.LATE),
        (30.1, MachineHealth.DOWN),
        (1e6, MachineHealth.DOWN),
    ],
)
def test_a_sample_is_up_for_one_interval_then_late_for_the_grace_then_down(
    age: float, health: MachineHealth
) -> None:
    assert policy.SAMPLE_GRACE_INTERVALS == 3
    assert monitor.health(age, 10.0) == health


def row(mid: str, standing: str = inventory.UP, seen: float | None = NOW) -> inventory.MachineRow:
    machine = Machine(mid, "192.0.2.1", mid) if standing != inventory.GONE else None
    return inventory.MachineRow(mid, machine, standing, None, seen, 3)


def fold(view: monitor.ClusterView, previous: ClusterSummary | None = None) -> ClusterSummary:
    return monitor.fold(view, "prod", seq=1, interval=10.0, now=NOW, previous=previous)


def healths(summary: ClusterSummary) -> dict[str, MachineHealth]:
    return {m.machine_id: m.health for m in summary.machines}


def test_a_restarting_machine_is_late_not_down_and_a_sample_from_the_future_is_up() -> None:
    view = monitor.ClusterView(
        samples={"fast": MachineSample("fast", NOW + 5)},  # its clock runs ahead
        machines=[row("fast"), row("restarting", inventory.GONE, None)],  # its subnet
        placed={"restarting"},
        restarting={"restarting"},
    )
    assert healths(fold(view)) == {"fast": MachineHealth.UP, "restarting": MachineHealth.LATE}


@pytest.mark.parametrize(
    ("last_seen", "kept"),
    [(NOW - 60, True), (NOW - policy.DOWN_MACHINE_KEPT - 1, False), (0.0, False)],
)
def test_a_machine_without_a_trace_stays_down_a_while_after_it_was_last_seen(
    last_seen: float, kept: bool
) -> None:
    earlier = ClusterSummary("prod", 0, NOW - 10, 10.0,
                             [MachineSummary("m1", MachineHealth.UP, last_seen, "h1")])  # fmt: skip
    found = healths(fold(monitor.ClusterView(), earlier))
    assert found == ({"m1": MachineHealth.DOWN} if kept else {})


def test_a_decommissioned_machine_of_a_previous_summary_is_not_carried_on() -> None:
    gone = MachineSummary("m1", MachineHealth.DECOMMISSIONED, NOW - 5)
    earlier = ClusterSummary("prod", 0, NOW - 10, 10.0, [gone])
    assert fold(monitor.ClusterView(), earlier).machines == []


def test_a_summary_past_the_installers_size_keeps_the_units_that_do_not_run() -> None:
    states = [UnitState(f"u{i:05d}-{'x' * 90}.service", "m1", "loaded", "active", "running")
              for i in range(4000)]  # fmt: skip
    states.append(UnitState("broken.service", "m1", "loaded", "failed", "failed"))
    summary = fold(monitor.ClusterView(machines=[row("m1")], states=states))
    assert len(summary.to_json().encode()) <= MAX_SUMMARY_BYTES
    assert 0 < len(summary.units) < len(states)
    assert "broken.service" in {u.name for u in summary.units}
    assert ClusterSummary.from_json(summary.to_json()) == summary


def test_counts_name_every_standing() -> None:
    view = monitor.ClusterView(machines=[row("a"), row("b", seen=NOW - 15)], decommissioned={"c"})
    assert monitor.counts(fold(view)) == {
        MachineHealth.UP: 1,
        MachineHealth.LATE: 1,
        MachineHealth.DOWN: 0,
        MachineHealth.DECOMMISSIONED: 1,
    }
