"""The machines of the cluster, as their agents announce them (list-machines)."""

from __future__ import annotations

from container.services.cluster import Cluster
from vulcano.records import Machine


def list_machines(cluster: Cluster) -> list[Machine]:
    """Every machine whose agent holds its record's lease, by id."""
    with cluster.registry() as registry:
        return registry.machines()


def by_id(machines: list[Machine]) -> dict[str, Machine]:
    """Machines looked up by id."""
    return {m.id: m for m in machines}
