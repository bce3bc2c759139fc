"""The login limiter's counting, on a clock the test moves."""

from __future__ import annotations

from container.panel.ratelimit import LoginLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limit_is_reached_after_max_failures_within_the_window() -> None:
    clock = Clock()
    limiter = LoginLimiter(max_failures=3, window=60, clock=clock)
    for _ in range(2):
        limiter.failed("a")
        clock.now += 1
    assert limiter.retry_after("a") == 0
    limiter.failed("a")
    assert limiter.retry_after("a") == 58  # the first failure leaves the window at 1060


def test_failures_leave_the_window_as_time_passes() -> None:
    clock = Clock()
    limiter = LoginLimiter(max_failures=2, window=10, clock=clock)
    limiter.failed("a")
    limiter.failed("a")
    assert limiter.retry_after("a") == 10
    clock.now += 10
    assert limiter.retry_after("a") == 0


def test_a_success_forgets_the_failures() -> None:
    limiter = LoginLimiter(max_failures=2, window=60, clock=Clock())
    limiter.failed("a")
    limiter.succeeded("a")
    limiter.failed("a")
    assert limiter.retry_after("a") == 0


def test_addresses_are_counted_apart() -> None:
    limiter = LoginLimiter(max_failures=1, window=60, clock=Clock())
    limiter.failed("a")
    assert limiter.retry_after("a") > 0
    assert limiter.retry_after("b") == 0
