"""A cluster's overlay config: kept in the database until its etcd is reachable, then
written to etcd's ``<prefix>network/config`` once, in a transaction.

The agents wait for that key before they lease a subnet (`agent.overlay`); a config
already there that differs is left alone and reported, never overwritten
(`vulcano-agent network init --replace` is the deliberate way to change it).
"""

from __future__ import annotations

import time

from container.services import clusters
from container.services.errors import ClusterAddressError, ServiceError
from container.store import Store
from vulcano import etcd
from vulcano.network import NetworkConfig, NetworkConfigError

WRITTEN = "written"
UNCHANGED = "unchanged"
PENDING = "kept until the cluster's etcd is reachable"


class NetworkConflict(ServiceError):
    """etcd holds another network config than the one the cluster was made with."""


def set_endpoints(store: Store, name: str, endpoints: str) -> clusters.ClusterRecord:
    """Record where the cluster's etcd answers (comma-separated client URLs)."""
    try:
        etcd.parse_endpoints(endpoints)
    except (ValueError, etcd.EndpointError) as exc:
        raise ClusterAddressError(f"ENDPOINTS: {exc}") from None
    clusters.get_cluster(store, name)
    with store.transaction() as conn:
        conn.execute("UPDATE clusters SET endpoints = ? WHERE name = ?", (endpoints, name))
    return clusters.get_cluster(store, name)


def write_network(store: Store, name: str) -> str:
    """Write the cluster's network config into its etcd if it has endpoints; the outcome
    (WRITTEN, UNCHANGED or PENDING). ClusterUnavailable when etcd does not answer."""
    record = clusters.get_cluster(store, name)
    if not record.endpoints:
        return PENDING
    config = NetworkConfig.from_json(record.network_config)
    with clusters.connect(store, name) as cluster, cluster.registry() as registry:
        client, key = registry.client, registry.ks.network_config
        ok, _ = client.transaction(
            compare=[client.transactions.version(key) == 0],
            success=[client.transactions.put(key, config.to_json())],
            failure=[],
        )
        outcome = WRITTEN
        if not ok:
            value, _ = client.get(key)
            try:
                current = NetworkConfig.from_json(value) if value is not None else None
            except NetworkConfigError:
                current = None
            if current != config:
                raise NetworkConflict(
                    f"cluster {name!r}: etcd holds another network config "
                    f"({(value or b'').decode(errors='replace')[:200]}); left alone"
                )
            outcome = UNCHANGED
    with store.transaction() as conn:
        conn.execute(
            "UPDATE clusters SET network_written_at = ? WHERE name = ?", (time.time(), name)
        )
    return outcome
