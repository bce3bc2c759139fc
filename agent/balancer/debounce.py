"""When a changed backend set is applied: removals at once, additions after they settle.

consul-template's ``wait = min:max``: a burst of additions is applied once, ``settle``
seconds after the last of them, and never later than ``max_wait`` after the first, so a
storm of changes costs a bounded number of reloads. A removal goes out at once (a gone
instance must stop receiving requests), taking along no pending addition. Pure: the
caller passes the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Decision(Generic[T]):
    target: frozenset[T]  # the set to apply now (may equal the applied one: nothing to do)
    wake_at: float | None  # when to decide again, if additions are still settling


class Debouncer(Generic[T]):
    """Remembers since when additions have been pending; ``decide`` is the only entry."""

    def __init__(self, settle: float, max_wait: float) -> None:
        if settle < 0 or max_wait < settle:
            raise ValueError("settle must be >= 0 and max_wait >= settle")
        self.settle = settle
        self.max_wait = max_wait
        self._pending: frozenset[T] = frozenset()
        self._first = 0.0
        self._last = 0.0

    def decide(
        self, applied: frozenset[T] | None, desired: frozenset[T], now: float
    ) -> Decision[T]:
        """What to apply now, given what is live (None: nothing yet) and what etcd says."""
        if applied is None:  # the first configuration: what etcd says, at once
            self._pending = frozenset()
            return Decision(desired, None)
        added = desired - applied
        if not added:
            self._pending = frozenset()
            return Decision(desired, None)
        if added != self._pending:
            if not self._pending:
                self._first = now
            self._last = now
            self._pending = added
        due = min(self._last + self.settle, self._first + self.max_wait)
        kept = applied & desired
        if now >= due or not kept:
            # settled; or nothing would be left to serve: better the new ones at once
            self._pending = frozenset()
            return Decision(desired, None)
        return Decision(kept, due)
