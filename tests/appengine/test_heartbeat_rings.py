"""The history rings, pure: slots, min/avg/max, wrapping, and a size that never grows."""

from __future__ import annotations

import pytest

from appengine.charts import chart
from appengine.heartbeat_rings import METRICS, ROW_WIDTH, TIERS, Ring, Tier, fold_all, metrics
from tests.appengine.heartbeat_helpers import machine, summary
from vulcano.heartbeat import MachineHealth, UnitSummary

T0 = 1_800_000_000.0  # a minute boundary (divisible by 3600)
TIER = Tier("test", 60, 5)


def test_a_slot_keeps_min_average_and_max_of_what_it_folded() -> None:
    ring = Ring(TIER)
    for offset, value in [(0, 4.0), (20, 1.0), (40, 7.0)]:
        assert ring.fold(T0 + offset, [value, 0, 0, 0])
    (row,) = ring.rows(T0 + 59)
    assert (row.start, row.count) == (T0, 3)
    assert (row.low[0], row.mean[0], row.high[0]) == (1.0, 4.0, 7.0)


def test_a_wrapped_slot_forgets_its_older_period() -> None:
    ring = Ring(TIER)
    ring.fold(T0, [9, 9, 9, 9])
    ring.fold(T0 + TIER.span, [1, 1, 1, 1])  # same slot, one lap later
    rows = ring.rows(T0 + TIER.span + 1)
    assert [(r.start, r.count, r.high[0]) for r in rows] == [(T0 + TIER.span, 1, 1.0)]


def test_a_summary_older_than_its_slots_period_is_skipped() -> None:
    ring = Ring(TIER)
    ring.fold(T0 + TIER.span, [1, 1, 1, 1])
    assert not ring.fold(T0, [9, 9, 9, 9])
    assert ring.rows(T0 + TIER.span + 1)[0].high[0] == 1.0


def test_rows_are_oldest_first_and_only_inside_the_span() -> None:
    ring = Ring(TIER)
    for minute in range(12):
        ring.fold(T0 + 60 * minute, [minute, 0, 0, 0])
    now = T0 + 60 * 11 + 30
    assert [r.mean[0] for r in ring.rows(now)] == [7, 8, 9, 10, 11]
    assert ring.rows(now + 3600) == []


@pytest.mark.parametrize("tier", TIERS)
def test_the_packed_size_is_fixed_however_many_summaries_arrive(tier: Tier) -> None:
    ring = Ring(tier)
    size = len(ring.packed())
    assert size == tier.rows * ROW_WIDTH * 8
    for i in range(3000):
        ring.fold(T0 + 37.0 * i, [i % 7, 1, 2, 3])
    assert len(ring.packed()) == size
    again = Ring(tier, ring.packed())
    assert again.rows(T0 + 37.0 * 3000) == ring.rows(T0 + 37.0 * 3000)


def test_metrics_count_up_machines_running_units_and_average_the_reporting_ones() -> None:
    machines = [
        machine(0, load1=1.0, cpu_percent=10.0),
        machine(1, MachineHealth.LATE, load1=3.0, cpu_percent=30.0),
        machine(2, MachineHealth.DOWN, load1=99.0, cpu_percent=99.0),
        machine(3, MachineHealth.DECOMMISSIONED, load1=99.0, cpu_percent=99.0),
    ]
    units = [
        UnitSummary("a.service", machines[0].machine_id, "active", "running"),
        UnitSummary("b.service", machines[1].machine_id, "failed", "failed"),
        UnitSummary("c.service", "", "inactive", "dead"),
    ]
    assert metrics(summary(1, machines=machines, units=units)) == (1.0, 1.0, 2.0, 20.0)
    assert metrics(summary(1, machines=[], units=[])) == (0.0, 0.0, 0.0, 0.0)


def test_one_summary_folds_into_one_row_of_every_tier() -> None:
    rings = [Ring(tier) for tier in TIERS]
    fold_all(rings, summary(1, at=T0 + 5, machines=4))
    for ring in rings:
        (row,) = ring.rows(T0 + 10)
        assert row.count == 1 and row.high[METRICS.index("machines_up")] == 4


def test_a_chart_breaks_its_line_where_slots_are_missing() -> None:
    ring = Ring(TIERS[0])
    for minute in (0, 1, 2, 10, 11):
        ring.fold(T0 + 60 * minute, [minute, 0, 0, 0])
    now = T0 + 60 * 12
    drawn = chart("machines_up", "Machines up", 0, ring.rows(now), TIERS[0], now)
    assert len(drawn.segments) == 2 and not drawn.empty
    assert drawn.latest == "11"
    assert chart("cpu", "CPU", 3, [], TIERS[0], now).empty
