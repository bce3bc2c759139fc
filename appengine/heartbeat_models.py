"""Where heartbeats are kept: one entity per install, the latest summary beside its rings.

One `ClusterHeartbeat` per install (its own entity group, apart from the install's, so
discovery's transactions on the install never contend with heartbeats) holds the last
stored summary, its ``seq``, and every history tier of `appengine.heartbeat_rings` as a
packed blob. Storing a heartbeat is one transaction that reads that entity, refuses a
replayed ``seq`` or a rate past the bound, and writes it back: exactly one entity write
per accepted heartbeat, whatever the number of machines, and none for a refusal. The
bound (`limits.HEARTBEATS_PER_INSTALL_PER_MINUTE`, 60) keeps the sustained rate at one
write a second on that entity, the Datastore guidance, while an outbox that drains after
an outage may send a minute's worth at once.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from google.cloud import ndb

from appengine import policy
from appengine.heartbeat_rings import TIERS, Ring, fold_all
from vulcano.errors import VulcanoError
from vulcano.heartbeat import ClusterSummary

_RPC = {"timeout": policy.DATASTORE_TIMEOUT, "retries": policy.DATASTORE_RETRIES}
_TXN_RPC = {"timeout": policy.DATASTORE_TIMEOUT}
_WINDOW = 60  # seconds: the rate bound's window


class Replayed(VulcanoError, ValueError):
    """A summary whose ``seq`` is not after the last stored one (409)."""

    def __init__(self, seq: int, last_seq: int) -> None:
        super().__init__(f"seq: {seq} is not after the last stored seq {last_seq}")
        self.last_seq = last_seq


class TooFrequent(VulcanoError):
    """More heartbeats in a minute than one install may send (429)."""

    def __init__(self, allowed: int, retry_after: int) -> None:
        super().__init__(
            f"heartbeats: at most {allowed} per minute for one install; try again later"
        )
        self.retry_after = retry_after


class ClusterHeartbeat(ndb.Model):  # type: ignore[misc]  # ndb is untyped
    """An install's latest summary and its history rings; key name = the install's."""

    seq = ndb.IntegerProperty(required=True, indexed=False)
    # The latest summary's own time, indexed: a cron finds clusters that went silent.
    at = ndb.FloatProperty(required=True)
    summary = ndb.BlobProperty(required=True, compressed=True)  # ClusterSummary JSON
    received = ndb.DateTimeProperty(required=True, tzinfo=UTC, indexed=False)
    # One packed ring per tier of heartbeat_rings.TIERS, in that order.
    rings = ndb.BlobProperty(repeated=True, compressed=True)
    # The rate bound's window (unix minute) and how many heartbeats it took so far.
    window = ndb.IntegerProperty(default=0, indexed=False)
    in_window = ndb.IntegerProperty(default=0, indexed=False)

    @classmethod
    def key_for(cls, install: ndb.Key) -> ndb.Key:
        return ndb.Key(cls, install.id())

    def latest(self) -> ClusterSummary:
        return ClusterSummary.from_json(self.summary)

    def history(self) -> list[Ring]:
        stored = list(self.rings or [])
        return [Ring(tier, stored[i] if i < len(stored) else None) for i, tier in enumerate(TIERS)]


class Stored:
    """A stored summary and the one it replaced (parsed only when asked for)."""

    def __init__(self, previous: bytes | None, current: ClusterSummary) -> None:
        self._previous = previous
        self.current = current

    @functools.cached_property
    def previous(self) -> ClusterSummary | None:
        """The summary stored before this one; None for the install's first."""
        return None if self._previous is None else ClusterSummary.from_json(self._previous)


def store(
    install: ndb.Key,
    summary: ClusterSummary,
    per_minute: int,
    raw: bytes | None = None,
    now: datetime | None = None,
) -> Stored:
    """Store ``summary`` as the install's latest and fold it into the rings, atomically.

    ``raw`` is the JSON ``summary`` was parsed from, kept as it came (it parses to the
    same summary; serialising again costs more than the rest of the write). Raises
    Replayed or TooFrequent having written nothing; returns once committed.
    """
    key = ClusterHeartbeat.key_for(install)
    moment = now or datetime.now(UTC)
    minute = int(moment.timestamp()) // _WINDOW

    def write() -> Stored:
        entity: ClusterHeartbeat | None = key.get(**_TXN_RPC)
        previous = None
        if entity is not None:
            if summary.seq <= entity.seq:
                raise Replayed(summary.seq, entity.seq)
            taken = entity.in_window if entity.window == minute else 0
            if taken >= per_minute:
                retry = (minute + 1) * _WINDOW - int(moment.timestamp())
                raise TooFrequent(per_minute, max(retry, 1))
            previous = entity.summary
            rings = entity.history()
        else:
            taken, rings = 0, [Ring(tier) for tier in TIERS]
        fold_all(rings, summary)
        ClusterHeartbeat(
            key=key,
            seq=summary.seq,
            at=summary.at,
            summary=raw if raw is not None else summary.to_json().encode("utf-8"),
            received=moment,
            rings=[ring.packed() for ring in rings],
            window=minute,
            in_window=taken + 1,
        ).put()  # inside a transaction ndb takes no per-call options
        return Stored(previous, summary)

    stored: Stored = ndb.transaction(write, retries=policy.TRANSACTION_RETRIES)
    return stored


def latest(install: ndb.Key) -> ClusterHeartbeat | None:
    """The install's heartbeat entity; None before its first heartbeat."""
    entity: ClusterHeartbeat | None = ClusterHeartbeat.key_for(install).get(**_RPC)
    return entity


def delete_for_install(install: ndb.Key) -> None:
    """Forget an install's heartbeats (with the install)."""
    ClusterHeartbeat.key_for(install).delete(**_RPC)
