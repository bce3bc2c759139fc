"""The summary's balancers: they read back, bad ones are named, the count is bounded, and a
summary without them (an older container's, or a cluster with none) is what it was."""

from __future__ import annotations

import json

import pytest

from vulcano.heartbeat import (
    MAX_BALANCER_ERROR,
    MAX_BALANCERS,
    BalancerSummary,
    ClusterSummary,
    HeartbeatError,
    SummaryTooLarge,
    cut_error,
)

T = 1_800_000_000.0


def summary(*balancers: BalancerSummary) -> ClusterSummary:
    return ClusterSummary("prod", 1, T, 60.0, balancers=list(balancers))


def test_balancers_read_back_as_they_were_written() -> None:
    written = summary(
        BalancerSummary("web@", "m1", "ok", "", 3),
        BalancerSummary("web@", "m2", "stale", "nginx: [emerg] unknown directive", 2),
    )
    assert ClusterSummary.from_json(written.to_json()) == written


def test_a_summary_without_balancers_is_the_one_older_installers_and_containers_know() -> None:
    old = {"cluster": "prod", "seq": 1, "at": T, "interval": 60.0, "machines": [], "units": []}
    parsed = ClusterSummary.from_json(json.dumps(old))
    assert parsed.balancers == []
    assert json.loads(parsed.to_json()) == {**old, "version": 1}  # no "balancers" key


def _with_balancer(**change: object) -> str:
    balancer = {"name": "web@", "machine_id": "m1", "status": "ok", "error": "", "backends": 1}
    balancer.update(change)
    document = json.loads(summary().to_json())
    document["balancers"] = [{"name": "lb", "machine_id": "m0", "status": "ok"}, balancer]
    return json.dumps(document)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "broken"}, "balancers[1].status"),
        ({"status": None}, "balancers[1].status"),
        ({"name": ""}, "balancers[1].name"),
        ({"name": "a/b"}, "balancers[1].name"),
        ({"machine_id": 7}, "balancers[1].machine_id"),
        ({"error": "line\nbreak"}, "balancers[1].error"),
        ({"error": "x" * (MAX_BALANCER_ERROR + 1)}, "balancers[1].error"),
        ({"backends": -1}, "balancers[1].backends"),
        ({"backends": True}, "balancers[1].backends"),
        ({"backends": 10**6}, "balancers[1].backends"),
        ({"colour": "red"}, "balancers[1].colour"),
    ],
)
def test_a_bad_balancer_field_is_named(change: dict[str, object], field: str) -> None:
    with pytest.raises(HeartbeatError) as caught:
        ClusterSummary.from_json(_with_balancer(**change))
    assert caught.value.field == field


def test_balancers_that_are_not_a_list_of_objects_are_named() -> None:
    document = json.loads(summary().to_json())
    for value, field in (({"a": 1}, "balancers"), (["x"], "balancers[0]")):
        document["balancers"] = value
        with pytest.raises(HeartbeatError) as caught:
            ClusterSummary.from_json(json.dumps(document))
        assert caught.value.field == field


def test_the_count_of_balancers_is_bounded() -> None:
    at_limit = summary(*(BalancerSummary(f"b{i}", "m1", "ok") for i in range(MAX_BALANCERS)))
    assert len(ClusterSummary.from_json(at_limit.to_json()).balancers) == MAX_BALANCERS
    past = summary(*(BalancerSummary(f"b{i}", "m1", "ok") for i in range(MAX_BALANCERS + 1)))
    with pytest.raises(SummaryTooLarge, match="balancers"):
        ClusterSummary.from_json(past.to_json())


@pytest.mark.parametrize(
    ("error", "cut"),
    [
        ("", ""),
        ("nginx: [emerg] unknown directive", "nginx: [emerg] unknown directive"),
        ("first\n  second\tthird\x00", "first second third"),
        ("y" * 1000, "y" * (MAX_BALANCER_ERROR - 1) + "\u2026"),
    ],
)
def test_an_error_is_cut_to_what_the_schema_carries(error: str, cut: str) -> None:
    assert cut_error(error) == cut
    carried = summary(BalancerSummary("lb", "m1", "stale", cut_error(error)))
    assert ClusterSummary.from_json(carried.to_json()) == carried
