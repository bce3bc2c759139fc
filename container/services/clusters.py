"""The clusters this provisioning container manages, as its database remembers them.

A cluster is a name, its planned size, the user-data flavour its nodes boot from, its
overlay network, the discovery URL its etcd members meet through, and the etcd client
endpoints the container reaches it at (learned as its members come up). `connect()`
makes the `Cluster` connection every other service function talks through.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from container.services.cluster import Cluster
from container.services.errors import ClusterNotFound
from container.store import Store
from vulcano.keyspace import DEFAULT_PREFIX


@dataclass(frozen=True)
class ClusterRecord:
    """One cluster as the database keeps it; ``endpoints`` are comma-separated etcd URLs."""

    name: str
    size: int
    flavour: str
    network: str
    discovery_url: str = ""
    endpoints: str = ""
    prefix: str = DEFAULT_PREFIX
    created_at: float = 0.0

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ClusterRecord:
        return cls(
            name=row["name"],
            size=int(row["size"]),
            flavour=row["flavour"],
            network=row["network"],
            discovery_url=row["discovery_url"],
            endpoints=row["endpoints"],
            prefix=row["prefix"],
            created_at=float(row["created_at"]),
        )


def list_clusters(store: Store) -> list[ClusterRecord]:
    """Every cluster, by name."""
    with store.read() as conn:
        rows = conn.execute("SELECT * FROM clusters ORDER BY name").fetchall()
    return [ClusterRecord.from_row(r) for r in rows]


def get_cluster(store: Store, name: str) -> ClusterRecord:
    """The cluster called ``name``; ClusterNotFound when there is none."""
    with store.read() as conn:
        row = conn.execute("SELECT * FROM clusters WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise ClusterNotFound(f"no cluster named {name!r} (vulcano cluster list shows them)")
    return ClusterRecord.from_row(row)


def connect(store: Store, name: str) -> Cluster:
    """A connection to the named cluster's etcd (opened on first use; close() it)."""
    record = get_cluster(store, name)
    if not record.endpoints:
        raise ClusterNotFound(
            f"cluster {name!r} has no etcd endpoints yet: none of its members has come up"
        )
    return Cluster(record.endpoints, record.prefix)
