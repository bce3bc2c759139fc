"""The heartbeat schema: samples and summaries round-trip, and bad ones name their field."""

from __future__ import annotations

import json

import pytest

from vulcano.heartbeat import (
    MAX_SUMMARY_BYTES,
    ClusterSummary,
    HeartbeatError,
    MachineHealth,
    MachineSample,
    MachineSummary,
    SummaryTooLarge,
    UnitSummary,
)

AT = 1_790_000_000.0


def summary() -> ClusterSummary:
    return ClusterSummary(
        cluster="prod",
        seq=7,
        at=AT,
        interval=30.0,
        machines=[MachineSummary("a1", MachineHealth.UP, AT - 3, "prod-1", "10.0.0.2", 0.5)],
        units=[UnitSummary("web@1.service", "a1", "active", "running")],
    )


def test_a_sample_and_a_summary_read_back_as_they_were_written() -> None:
    sample = MachineSample("a1", AT, "prod-1", "10.0.0.2", 0.1, 0.2, 0.3, 12.5, 8, 4, 10, 5,
                           {"web@1.service": "active/running"})  # fmt: skip
    assert MachineSample.from_json(sample.to_json()) == sample
    assert ClusterSummary.from_json(summary().to_json()) == summary()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cluster": ""}, "cluster"),
        ({"seq": -1}, "seq"),
        ({"seq": True}, "seq"),
        ({"at": "now"}, "at"),
        ({"at": 5}, "at"),
        ({"interval": 0}, "interval"),
        ({"interval": float("nan")}, "interval"),
        ({"machines": {}}, "machines"),
        ({"colour": "red"}, "summary.colour"),
        ({"version": 2}, "version"),
        ({"machines": [{"machine_id": "a1", "health": "sleepy", "last_seen": AT}]},
         "machines[0].health"),
        ({"machines": [{"machine_id": "a\n1", "health": "up", "last_seen": AT}]},
         "machines[0].machine_id"),
        ({"units": [{"name": "x.service", "active": "ACTIVE"}]}, "units[0].active"),
        ({"units": ["x.service"]}, "units[0]"),
    ],
)  # fmt: skip
def test_a_bad_field_is_named(change: dict[str, object], field: str) -> None:
    data = json.loads(summary().to_json())
    data.update(change)
    with pytest.raises(HeartbeatError) as refused:
        ClusterSummary.from_json(json.dumps(data))
    assert refused.value.field == field


@pytest.mark.parametrize("raw", ["", "[]", "{", b"\xff\xfe", "null"])
def test_what_is_not_a_json_object_is_refused(raw: str | bytes) -> None:
    with pytest.raises(HeartbeatError):
        ClusterSummary.from_json(raw)


def test_a_summary_past_the_size_limit_is_refused_before_it_is_read() -> None:
    with pytest.raises(SummaryTooLarge):
        ClusterSummary.from_json(" " * (MAX_SUMMARY_BYTES + 1))
