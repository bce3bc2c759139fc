"""The check state machine and the CheckRestart= timer, on a clock the test moves."""

from __future__ import annotations

import pytest

from agent.services.checkstate import CheckTracker, RestartTimer, overall
from vulcano.endpoints import CheckStatus, parse_check

PENDING, PASSING, FAILING = CheckStatus.PENDING, CheckStatus.PASSING, CheckStatus.FAILING


def _run(line: str, results: str) -> list[CheckStatus]:
    """The status after each result: ``results`` is a string of 'y' (pass) and 'n'."""
    tracker = CheckTracker(parse_check(line))
    assert tracker.result.status == PENDING
    out = []
    for t, r in enumerate(results):
        tracker.record(r == "y", f"result {t}", float(t))
        out.append(tracker.result.status)
    return out


@pytest.mark.parametrize(
    ("line", "results", "expected"),
    [
        # one success passes by default; three failures in a row fail
        ("http :80", "y", [PASSING]),
        ("http :80", "ynny", [PASSING] * 4),
        ("http :80", "ynnn", [PASSING, PASSING, PASSING, FAILING]),
        ("http :80", "nnn", [PENDING, PENDING, FAILING]),
        # pending -> passing -> failing -> passing with thresholds 2 and 2
        (
            "tcp :1 passing=2 failing=2",
            "yyynnyy",
            [PENDING, PASSING, PASSING, PASSING, FAILING, FAILING, PASSING],
        ),
        # a lone success does not bring a failing check back before passing= in a row
        ("tcp :1 passing=3 failing=1", "nyynyyy", [FAILING] * 6 + [PASSING]),
    ],
)
def test_thresholds_move_the_status(line: str, results: str, expected: list[CheckStatus]) -> None:
    assert _run(line, results) == expected


def test_record_says_when_the_status_changed_and_keeps_its_since() -> None:
    tracker = CheckTracker(parse_check("http :80 passing=2"))
    assert tracker.record(True, "ok", 10.0) is False  # still pending
    assert tracker.record(True, "ok", 11.0) is True
    assert (tracker.result.status, tracker.result.since, tracker.result.streak) == (
        PASSING,
        11.0,
        2,
    )
    assert tracker.record(True, "fine", 12.0) is False
    assert tracker.result.since == 11.0 and tracker.result.output == "fine"
    assert tracker.result.streak == 3


def test_output_is_cut_short() -> None:
    tracker = CheckTracker(parse_check("http :80"))
    tracker.record(False, "x" * 10_000, 0.0)
    assert 0 < len(tracker.result.output) <= 400


def test_overall_health_of_an_instance() -> None:
    assert overall([]) == PASSING
    assert overall([PASSING, PENDING]) == PENDING
    assert overall([PENDING, FAILING, PASSING]) == FAILING
    assert overall([PASSING, PASSING]) == PASSING


def test_restart_timer_waits_for_continuous_failure() -> None:
    timer = RestartTimer(after=30.0)
    assert not timer.observe(True, 100.0)
    assert not timer.observe(True, 129.9)
    assert not timer.observe(False, 130.0)  # healthy again: the count starts over
    assert not timer.observe(True, 131.0)
    assert not timer.observe(True, 160.9)
    assert timer.observe(True, 161.0)


def test_restart_timer_restarts_at_most_once_per_duration() -> None:
    timer = RestartTimer(after=10.0)
    fired = []
    for step in range(121):  # failing for a minute, looked at every 0.5 s
        now = step * 0.5
        if timer.observe(True, now):
            fired.append(now)
            timer.reset()  # the new instance fails at once too
    # the first after 10 s; then each new instance counts from its first failing look
    assert fired == [10.0, 20.5, 31.0, 41.5, 52.0]


def test_restart_timer_counts_a_new_instance_from_its_own_failure() -> None:
    timer = RestartTimer(after=10.0)
    assert not timer.observe(True, 0.0)
    assert timer.observe(True, 10.0)
    timer.reset()
    assert not timer.observe(False, 12.0)  # the new instance passes a while
    assert not timer.observe(True, 15.0)
    assert not timer.observe(True, 24.9)
    assert timer.observe(True, 25.0)


def test_restart_timer_never_fires_while_passing() -> None:
    timer = RestartTimer(after=1.0)
    assert not any(timer.observe(False, float(t)) for t in range(100))
