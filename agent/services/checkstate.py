"""The check state machine and the restart-policy timer: pure, with the clock passed in.

Consul's model: a new instance's check starts ``pending``; ``passing`` successes in a
row make it pass, ``failing`` failures in a row make it fail, and a lone result the
other way changes nothing (a passing check stays passing after one failure when
``failing`` is 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vulcano.endpoints import CheckResult, CheckSpec, CheckStatus

MAX_OUTPUT = 400  # characters of a result's message kept in the check state


@dataclass
class CheckTracker:
    """One check of one instance: its status from the results so far."""

    spec: CheckSpec
    result: CheckResult = field(default_factory=CheckResult)
    last_ok: bool | None = None  # the last result, None before the first

    def record(self, ok: bool, output: str, now: float) -> bool:
        """Count one result (``now``: wall clock); True if the status changed."""
        streak = self.result.streak + 1 if self.last_ok is ok else 1
        self.last_ok = ok
        status = self.result.status
        if ok and streak >= self.spec.passing:
            status = CheckStatus.PASSING
        elif not ok and streak >= self.spec.failing:
            status = CheckStatus.FAILING
        changed = status != self.result.status
        since = now if changed else self.result.since
        self.result = CheckResult(status, output[:MAX_OUTPUT], since, streak)
        return changed


def overall(statuses: list[CheckStatus]) -> CheckStatus:
    """An instance's health: failing if any check fails, pending if any is pending, else
    passing (no checks at all: passing)."""
    if CheckStatus.FAILING in statuses:
        return CheckStatus.FAILING
    if CheckStatus.PENDING in statuses:
        return CheckStatus.PENDING
    return CheckStatus.PASSING


@dataclass
class RestartTimer:
    """CheckRestart=: restart once checks have failed ``after`` seconds in a row, and then
    not again before ``after`` more seconds (monotonic clock)."""

    after: float
    failing_since: float | None = None
    last_restart: float | None = None

    def observe(self, failing: bool, now: float) -> bool:
        """Note the instance's health at ``now``; True when it is time to restart it."""
        if not failing:
            self.failing_since = None
            return False
        if self.failing_since is None:
            self.failing_since = now
        if now - self.failing_since < self.after:
            return False
        if self.last_restart is not None and now - self.last_restart < self.after:
            return False
        self.last_restart = now
        self.failing_since = None
        return True

    def reset(self) -> None:
        """A new instance: its failing time starts over (the last restart is remembered)."""
        self.failing_since = None
