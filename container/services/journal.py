"""A unit's output as its runner publishes it: the last lines, and following new ones.

Following is an etcd watch on the unit's journal key from the revision the tail was read
at, so nothing printed in between is missed and every update arrives as it is written
(fleetctl's ``journal -f`` ran ``journalctl -f`` over SSH; here the runner's published
lines are the journal, see docs/fleet.md).
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Generator
from dataclasses import dataclass

from container.services.cluster import Cluster
from container.services.errors import UnitNotFound
from vulcano import policy

# The agent's snapshot-then-watch is the project's one reliable etcd watch (python3-etcd3's
# own watcher thread dies silently on a stream error); shared here rather than copied.
from vulcano.watch import Change, PrefixWatch, Resync, snapshot


@dataclass(frozen=True)
class JournalTail:
    """A unit's last lines, how many it has printed in all, and the etcd revision read at."""

    lines: list[str]
    seq: int
    revision: int = 0


def read_journal(cluster: Cluster, name: str, lines: int) -> JournalTail:
    """The last ``lines`` lines a submitted unit printed (none when ``lines`` <= 0)."""
    with cluster.registry() as registry:
        if registry.spec(name) is None:
            raise UnitNotFound(f"unit {name} is not submitted")
        key = registry.ks.unit_journal(name)
        revision, [found] = snapshot(registry.client, [key])
    seq, out = _decode(next((c for c in found if c.key == key), None))
    return JournalTail(out[-lines:] if lines > 0 else [], seq, revision)


def _decode(change: Change | None) -> tuple[int, list[str]]:
    if change is None or change.value is None:
        return 0, []
    data = json.loads(change.value)
    return int(data["seq"]), list(data["lines"])


def follow_journal(
    cluster: Cluster,
    name: str,
    after: int,
    *,
    from_revision: int = 0,
    stop: threading.Event | None = None,
) -> Generator[str, None, None]:
    """Lines the unit prints after its ``after``-th, as they are published; until ``stop``.

    ``from_revision`` (a JournalTail's) makes the follow start exactly where the tail was
    read. Ends when the unit's journal is deleted (the unit was destroyed); a lost watch
    is opened again after a fresh read (lines are counted, so none repeats), and etcd
    being unreachable ends it with ClusterUnavailable. Without ``stop`` it never ends
    otherwise: the caller closes it.
    """
    stop = stop or threading.Event()
    seen = after
    with cluster.registry() as registry:
        key = registry.ks.unit_journal(name)
        revision = from_revision
        while not stop.is_set():
            if revision == 0:
                revision, [found] = snapshot(registry.client, [key])
                changes = [c for c in found if c.key == key]
            else:
                changes = []
            watch = PrefixWatch(registry.client, [key], revision + 1)
            try:
                while not stop.is_set():
                    for change in changes:
                        if change.key != key:
                            continue
                        revision = max(revision, change.revision)
                        if change.value is None:
                            return  # destroyed: nothing more will come
                        seq, out = _decode(change)
                        if seq < seen:
                            seen = 0  # the runner started counting again (a new run)
                        if seq > seen:
                            yield from out[-min(len(out), seq - seen) :]
                            seen = seq
                    try:
                        item = watch.events.get(timeout=policy.JOURNAL_STOP_CHECK)
                    except queue.Empty:
                        changes = []
                        continue
                    if isinstance(item, Resync):
                        revision = 0  # read again: the revision may be compacted away
                        break
                    changes = item
            finally:
                watch.cancel()
            stop.wait(policy.JOURNAL_REWATCH_DELAY)
