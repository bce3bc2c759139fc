"""Debounce decisions: removals at once, additions after settling, bursts bounded. Pure."""

from __future__ import annotations

import pytest

from agent.balancer.debounce import Debouncer

SETTLE, MAX = 1.0, 5.0


def deb() -> Debouncer[str]:
    return Debouncer(SETTLE, MAX)


def test_first_configuration_is_applied_at_once() -> None:
    d = deb()
    decision = d.decide(None, frozenset({"a", "b"}), now=0.0)
    assert decision.target == {"a", "b"} and decision.wake_at is None


def test_a_removal_goes_out_at_once() -> None:
    d = deb()
    decision = d.decide(frozenset({"a", "b", "c"}), frozenset({"a", "c"}), now=10.0)
    assert decision.target == {"a", "c"} and decision.wake_at is None


def test_an_addition_waits_for_the_settle_time() -> None:
    d = deb()
    applied = frozenset({"a"})
    first = d.decide(applied, frozenset({"a", "b"}), now=10.0)
    assert first.target == {"a"} and first.wake_at == 11.0
    assert d.decide(applied, frozenset({"a", "b"}), now=10.9).target == {"a"}
    assert d.decide(applied, frozenset({"a", "b"}), now=11.0).target == {"a", "b"}


def test_more_additions_extend_the_wait_up_to_the_maximum() -> None:
    d = deb()
    applied = frozenset({"a"})
    desired = set(applied)
    targets = []
    for step in range(100):  # a new instance every 0.5 s for 50 s: never settles
        now = step * 0.5
        desired.add(f"n{step}")
        targets.append(d.decide(applied, frozenset(desired), now))
        if targets[-1].target == desired:
            assert now == pytest.approx(MAX)  # the max wait bounds the delay
            return
        assert targets[-1].wake_at is not None and targets[-1].wake_at <= MAX
    raise AssertionError("additions never applied")


def test_a_removal_during_settling_takes_no_pending_addition_along() -> None:
    d = deb()
    applied = frozenset({"a", "b"})
    d.decide(applied, frozenset({"a", "b", "new"}), now=0.0)
    decision = d.decide(applied, frozenset({"a", "new"}), now=0.2)
    assert decision.target == {"a"}
    assert decision.wake_at == pytest.approx(1.0)  # the addition still settles from 0.0


def test_nothing_left_to_serve_applies_additions_at_once() -> None:
    d = deb()
    assert d.decide(frozenset(), frozenset({"a"}), now=0.0).target == {"a"}
    assert d.decide(frozenset({"old"}), frozenset({"new"}), now=0.0).target == {"new"}


def simulate(events: list[tuple[float, set[str]]], end: float) -> int:
    """Apply a timeline of desired sets as the balancer loop does; count applies."""
    d = deb()
    applied: frozenset[str] = frozenset({"a", "b", "c"})
    applies = 0
    wake: float | None = None
    desired = frozenset(applied)
    times = sorted({t for t, _ in events} | {end})
    i = 0
    now = 0.0
    while now <= end:
        while i < len(events) and events[i][0] <= now:
            desired = frozenset(events[i][1])
            i += 1
        decision = d.decide(applied, desired, now)
        if decision.target != applied:
            applied = decision.target
            applies += 1
        wake = decision.wake_at
        later = [t for t in times if t > now]
        candidates = [*later[:1], *([wake] if wake is not None else [])]
        if not candidates:
            break
        now = min(candidates)
    assert applied == desired
    return applies


def test_a_burst_of_50_additions_is_one_apply() -> None:
    base = {"a", "b", "c"}
    events = []
    for k in range(50):
        base = base | {f"n{k}"}
        events.append((k * 0.05, set(base)))
    assert simulate(events, end=20.0) == 1


def test_50_flaps_of_one_new_instance_cost_at_most_one_apply() -> None:
    events = []
    for k in range(50):  # d withdrawn / published every 40 ms
        events.append((k * 0.04, {"a", "b", "c", "d"} if k % 2 == 0 else {"a", "b", "c"}))
    events.append((2.0, {"a", "b", "c", "d"}))
    assert simulate(events, end=20.0) <= 1


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Debouncer(-1.0, 5.0)
    with pytest.raises(ValueError):
        Debouncer(3.0, 1.0)
