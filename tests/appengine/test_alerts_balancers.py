"""transitions() for balancers: ok → stale alerts with its error, stale → ok recovers,
nothing for one that appears or goes away; table-driven, no I/O."""

from __future__ import annotations

import pytest

from appengine.alert_rules import Change, Transition, transitions
from vulcano.heartbeat import BalancerSummary, ClusterSummary, MachineHealth, MachineSummary

T = 1_800_000_000.0
ERROR = 'nginx: [emerg] unknown directive "vulcano_no_such_directive"'


def summary(seq: int, **balancers: str) -> ClusterSummary:
    """A summary whose balancer ``web@`` on each machine named stands as given."""
    return ClusterSummary(
        "prod",
        seq,
        T + seq,
        60.0,
        machines=[MachineSummary(m, MachineHealth.UP, T) for m in sorted(balancers)],
        balancers=[
            BalancerSummary("web@", m, status, ERROR if status == "stale" else "", 3)
            for m, status in balancers.items()
        ],
    )


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ("ok", "stale", [Change.BALANCER_STALE]),
        ("stale", "ok", [Change.BALANCER_RECOVERED]),
        ("ok", "ok", []),
        ("stale", "stale", []),
    ],
)
def test_balancer_flips(before: str, after: str, expected: list[Change]) -> None:
    found = transitions(summary(1, m1=before), summary(2, m1=after))
    assert [t.change for t in found] == expected
    assert all(t.subject == "web@/m1" and (t.was, t.now) == (before, after) for t in found)


def test_a_balancer_that_appears_or_goes_away_says_nothing() -> None:
    assert transitions(summary(1), summary(2, m1="stale")) == []
    assert transitions(summary(1, m1="ok"), summary(2)) == []
    assert transitions(None, summary(1, m1="stale")) == []


def test_each_machines_balancer_flips_on_its_own() -> None:
    found = transitions(
        summary(1, m1="ok", m2="stale", m3="ok"), summary(2, m1="stale", m2="ok", m3="ok")
    )
    assert [(t.change, t.subject) for t in found] == [
        (Change.BALANCER_STALE, "web@/m1"),
        (Change.BALANCER_RECOVERED, "web@/m2"),
    ]


def test_a_stale_alert_carries_the_error_and_its_recovery_says_so() -> None:
    (stale,) = transitions(summary(1, m1="ok"), summary(2, m1="stale"))
    assert stale.detail == ERROR and not stale.recovery
    assert stale.title == "[vulcano] STALE: balancer web@/m1 of cluster prod"
    assert stale.text == f"balancer web@/m1 of cluster prod: ok -> stale ({ERROR})"
    assert stale.to_dict()["change"] == "balancer-stale"
    assert stale.to_dict()["detail"] == ERROR
    (back,) = transitions(summary(2, m1="stale"), summary(3, m1="ok"))
    assert back.recovery and back.detail == ""
    assert back.title == "[vulcano] RECOVERED: balancer web@/m1 of cluster prod"
    assert back.to_dict()["change"] == "balancer-recovered"


def test_machine_and_unit_alerts_read_as_before() -> None:
    down = Transition(Change.MACHINE_DOWN, "prod", "m1", "up", "down", T)
    assert down.title == "[vulcano] DOWN: machine m1 of cluster prod"
    assert down.text == "machine m1 of cluster prod: up -> down"
