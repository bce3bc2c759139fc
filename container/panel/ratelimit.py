"""The login rate limit: failed logins counted per client address, in this process.

In-process on purpose: the panel runs one gunicorn worker by default, so this counts
every login it serves; with ``--workers N`` each worker counts its own (N times the
limit at worst). Behind a reverse proxy every client is the proxy's address.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from container import policy

# Addresses tracked before the stale ones are swept out (many addresses, few failures each).
_SWEEP_AT = 10_000


class LoginLimiter:
    """At most ``max_failures`` failed logins per address within ``window`` seconds."""

    def __init__(
        self,
        max_failures: int = policy.LOGIN_MAX_FAILURES,
        window: float = policy.LOGIN_FAILURE_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float]:
        failures = self._failures.get(address)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[address]
        return failures

    def retry_after(self, address: str) -> int:
        """Seconds until ``address`` may try again; 0 when it may now."""
        with self._lock:
            now = self._clock()
            failures = self._recent(address, now)
            if len(failures) < self.max_failures:
                return 0
            return max(1, int(failures[0] + self.window - now + 0.999))

    def failed(self, address: str) -> None:
        with self._lock:
            now = self._clock()
            if len(self._failures) >= _SWEEP_AT:
                for known in list(self._failures):
                    self._recent(known, now)
            self._recent(address, now)
            self._failures.setdefault(address, deque()).append(now)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)
