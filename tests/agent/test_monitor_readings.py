"""The sampler's pure parts: /proc parsed, CPU busy share, and the sample they make."""

from __future__ import annotations

import pytest

from agent.monitor.readings import (
    CpuTimes,
    Readings,
    build_sample,
    cpu_percent,
    parse_cpu,
    parse_loadavg,
    parse_meminfo,
    unit_states,
)
from vulcano.heartbeat import MachineSample

AT = 1_790_000_000.0
STAT = "cpu  100 5 50 800 20 0 10 15 7 0\ncpu0 50 2 25 400 10 0 5 7 3 0\nintr 1 2 3\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.52 0.58 0.59 2/1100 4242\n", (0.52, 0.58, 0.59)),
        ("12.00 3.5 0 1/1 1", (12.0, 3.5, 0.0)),
    ],
)
def test_loadavg_gives_the_three_averages(text: str, expected: tuple[float, ...]) -> None:
    assert parse_loadavg(text) == expected


@pytest.mark.parametrize("text", ["", "0.5 0.5", "a b c 1/1 1"])
def test_loadavg_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_loadavg(text)


def test_cpu_counts_idle_and_iowait_as_idle_and_leaves_guest_out() -> None:
    # user nice system idle iowait irq softirq steal | guest guest_nice
    assert parse_cpu(STAT) == CpuTimes(busy=100 + 5 + 50 + 10 + 15, total=1000)


@pytest.mark.parametrize("text", ["", "cpu0 1 2 3 4\n", "cpu 1 2\n"])
def test_stat_without_the_all_cpu_line_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_cpu(text)


@pytest.mark.parametrize(
    ("previous", "current", "percent"),
    [
        (None, CpuTimes(10, 100), 0.0),  # first sample: no interval to measure
        (CpuTimes(10, 100), CpuTimes(35, 200), 25.0),
        (CpuTimes(10, 100), CpuTimes(110, 200), 100.0),
        (CpuTimes(10, 100), CpuTimes(10, 100), 0.0),  # no tick passed
        (CpuTimes(500, 1000), CpuTimes(5, 50), 0.0),  # counters went back: a reboot
        (CpuTimes(0, 0), CpuTimes(1, 3), 33.3),
    ],
)
def test_cpu_percent_is_the_busy_share_between_two_readings(
    previous: CpuTimes | None, current: CpuTimes, percent: float
) -> None:
    assert cpu_percent(previous, current) == percent


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 600 kB\n", (1024000, 614400)),
        # before Linux 3.14: free + buffers + cached
        ("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n", (1024000, 409600)),
        ("MemTotal: 100 kB\nMemAvailable: 900 kB\n", (102400, 102400)),  # never above total
    ],
)
def test_meminfo_gives_total_and_available_bytes(text: str, expected: tuple[int, int]) -> None:
    assert parse_meminfo(text) == expected


def test_meminfo_without_a_total_is_refused() -> None:
    with pytest.raises(ValueError, match="MemTotal"):
        parse_meminfo("MemFree: 1 kB\n")


def readings(**kw: object) -> Readings:
    base: dict[str, object] = {
        "load": (0.5, 0.25, 0.125),
        "cpu": CpuTimes(60, 200),
        "mem_total": 8000,
        "mem_available": 2000,
        "disk_total": 1000,
        "disk_free": 250,
    }
    return Readings(**{**base, **kw})  # type: ignore[arg-type]


def test_a_sample_holds_vitals_and_units_as_the_schema_reads_them() -> None:
    sample = build_sample(
        machine_id="a1",
        hostname="prod-1",
        public_ip="10.0.0.2",
        at=AT,
        readings=readings(),
        previous_cpu=CpuTimes(10, 100),
        units={"web@1.service": ("active", "running"), "db.service": ("failed", "failed")},
    )
    assert sample == MachineSample(
        "a1", AT, "prod-1", "10.0.0.2", 0.5, 0.25, 0.125, 50.0, 8000, 6000, 1000, 750,
        {"db.service": "failed/failed", "web@1.service": "active/running"},
    )  # fmt: skip
    assert MachineSample.from_json(sample.to_json()) == sample


@pytest.mark.parametrize(
    ("kw", "mem_used", "disk_used"),
    [
        ({"mem_available": 9000}, 0, 750),  # more available than total: none used
        ({"disk_free": 2000}, 6000, 0),
        ({"mem_total": 0, "mem_available": 0, "disk_total": 0, "disk_free": 0}, 0, 0),
    ],
)
def test_used_is_never_negative_nor_above_total(
    kw: dict[str, int], mem_used: int, disk_used: int
) -> None:
    sample = build_sample(machine_id="a1", hostname="h", public_ip="", at=AT,
                          readings=readings(**kw), previous_cpu=None, units={})  # fmt: skip
    assert (sample.mem_used, sample.disk_used) == (mem_used, disk_used)
    MachineSample.from_json(sample.to_json())


def test_units_the_schema_cannot_carry_are_left_out_of_the_sample() -> None:
    states = {
        "ok.service": ("active", "running"),
        "dev-disk-by\\x2duuid.mount": ("active", "mounted"),  # a systemd escape
        "x" * 130 + ".service": ("active", "running"),  # past 128 characters
    }
    assert unit_states(states) == {"ok.service": "active/running"}
