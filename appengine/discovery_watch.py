"""Waiting for the next member of a discovery token: Datastore polls, same-process wakeups.

Datastore has no watch, so a discovery watch reads the token again and again inside its
request (its index says whether anything registered), at intervals from appengine.policy.
A registration served by the same process wakes its waiting watches at once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from appengine import policy
from appengine.discovery_errors import (
    KeyNotFound,
)
from appengine.discovery_models import (
    DiscoveryMember,
    DiscoveryToken,
)
from appengine.limits import DISCOVERY_WATCH_RETRY_AFTER, LimitReached


class WatchSlots:
    """Bounds this process's waiting watches: in all, per token, per client address.

    A watch holds a worker thread for as long as it waits, so this process never lets
    more wait than leave threads for pages. Past a bound the watch is refused at once
    (LimitReached, 503: etcd retries a 5xx GET after a backoff) instead of queueing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0
        self._per_token: Counter[str] = Counter()
        self._per_client: Counter[str] = Counter()
        # Watches refused since the process started (a bound that is hit is worth seeing).
        self.refused = 0

    @contextmanager
    def hold(
        self, token: str, client: str, per_token: int, per_client: int, total: int
    ) -> Iterator[None]:
        with self._lock:
            refused = None
            if self._total >= total:
                refused = f"discovery watches: at most {total} wait at once on this server"
            elif self._per_token[token] >= per_token:
                refused = f"discovery watches: at most {per_token} wait at once on this token"
            elif self._per_client[client] >= per_client:
                refused = f"discovery watches: at most {per_client} wait at once from one address"
            if refused is not None:
                self.refused += 1
                raise LimitReached(
                    refused + "; try again", status=503, retry_after=DISCOVERY_WATCH_RETRY_AFTER
                )
            self._total += 1
            self._per_token[token] += 1
            self._per_client[client] += 1
        try:
            yield
        finally:
            with self._lock:
                self._total -= 1
                self._per_token[token] -= 1
                self._per_client[client] -= 1
                if not self._per_token[token]:
                    del self._per_token[token]
                if not self._per_client[client]:
                    del self._per_client[client]

    def waiting(self) -> int:
        with self._lock:
            return self._total


watch_slots = WatchSlots()


class _Wakeups:
    """Wakes this process's waiting watches on a token when a member registers here.

    Watches served by other processes (gunicorn workers, App Engine instances) see the
    member at their next poll; this only spares same-process watches the wait. A
    registration landing between a watch's read and its wait is seen at the next poll.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._generation: dict[str, int] = {}
        self._waiting: Counter[str] = Counter()

    def wait(self, token: str, timeout: float) -> None:
        with self._changed:
            self._waiting[token] += 1
            seen = self._generation.get(token, 0)
            try:
                self._changed.wait_for(lambda: self._generation.get(token, 0) != seen, timeout)
            finally:
                self._waiting[token] -= 1
                if self._waiting[token] == 0:
                    del self._waiting[token]
                    self._generation.pop(token, None)

    def notify(self, token: str) -> None:
        with self._changed:
            if token in self._waiting:
                self._generation[token] = self._generation.get(token, 0) + 1
                self._changed.notify_all()

    def waiting(self, token: str) -> int:
        with self._changed:
            return self._waiting[token]


_wakeups = _Wakeups()


def waiting_on(token: str) -> int:
    """How many of this process's watches wait for a member of ``token`` right now."""
    return _wakeups.waiting(token)


def member_registered(token: str) -> None:
    """Tell this process's watches on `token` that a member was just committed."""
    _wakeups.notify(token)


def poll_delays() -> Iterator[float]:
    """Intervals between Datastore reads of a waiting watch: short first, then capped."""
    delay = policy.DISCOVERY_WATCH_POLL_FIRST
    while True:
        yield delay
        delay = min(policy.DISCOVERY_WATCH_POLL_MAX, delay * policy.DISCOVERY_WATCH_POLL_FACTOR)


def next_member(
    token: str,
    directory: DiscoveryToken,
    since: int,
    covers: Callable[[DiscoveryMember], bool],
    timeout: float,
) -> tuple[DiscoveryMember | None, int]:
    """The first covered member with createdIndex >= since, and the token's index.

    Only member creations are events: `_config` never changes and members are never
    deleted. Returns (None, index) at the timeout; raises KeyNotFound if the token is
    deleted meanwhile.
    """
    deadline = time.monotonic() + timeout
    delays = poll_delays()
    searched_up_to = since - 1
    current: DiscoveryToken | None = directory
    while current is not None:
        if current.index > searched_up_to:
            for member in current.members():
                if member.created_index >= since and covers(member):
                    return member, current.index
            searched_up_to = current.index
        left = deadline - time.monotonic()
        if left <= 0:
            return None, current.index
        _wakeups.wait(token, min(next(delays), left))
        current = DiscoveryToken.lookup(token)
    raise KeyNotFound("token")
