"""A unit's output as its runner publishes it: the last lines, and following new ones."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

from container.services.cluster import Cluster
from container.services.errors import UnitNotFound
from vulcano import policy


@dataclass(frozen=True)
class JournalTail:
    """A unit's last lines of output, and how many it has printed in all (to follow on)."""

    lines: list[str]
    seq: int


def read_journal(cluster: Cluster, name: str, lines: int) -> JournalTail:
    """The last ``lines`` lines a submitted unit printed (none when ``lines`` <= 0)."""
    with cluster.registry() as registry:
        if registry.spec(name) is None:
            raise UnitNotFound(f"unit {name} is not submitted")
        seq = registry.journal_seq(name)
        out = registry.journal(name)
    return JournalTail(out[-lines:] if lines > 0 else [], seq)


def follow_journal(
    cluster: Cluster,
    name: str,
    after: int,
    *,
    stop: threading.Event | None = None,
    poll_interval: float = policy.UNIT_COMMAND_POLL_INTERVAL,
) -> Iterator[str]:
    """Lines the unit prints after its ``after``-th, as they come; until ``stop`` is set.

    Without ``stop`` it never ends: the caller closes the generator.
    """
    stop = stop or threading.Event()
    seen = after
    with cluster.registry() as registry:
        while not stop.wait(poll_interval):
            seq = registry.journal_seq(name)
            if seq > seen:
                out = registry.journal(name)
                yield from out[-min(len(out), seq - seen) :]
                seen = seq
