"""A simulated cluster for the panel's pages: in-process agents on the real test etcd.

Each machine is a `vulcano.lab.cluster.Node` (record on a lease, engine, machine units,
the builtin runner), so units really get placed, really run and really print.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import etcd3

from vulcano.keyspace import Keyspace
from vulcano.lab.cluster import Node, kill_by_pid, nodes, pids_of
from vulcano.lab.poll import wait_for
from vulcano.lab.services import Etcd
from vulcano.registry import Registry


@dataclass
class Lab:
    nodes: list[Node]
    registry: Registry
    marker: str  # every unit process this test starts has it on its command line

    def unit(self, text: str) -> str:
        """A unit file whose processes carry the marker (so they are found and stopped)."""
        return text.replace("MARK", self.marker)


@contextmanager
def running_lab(etcd: Etcd, base: Path) -> Iterator[Lab]:
    """Two machines (metadata region=eu) until the block ends; their units gone after."""
    marker = "vpanel-" + secrets.token_hex(4)
    host, port = etcd.host_port
    client = etcd3.client(host=host, port=port, timeout=5)
    registry = Registry(client, Keyspace())
    ids = sorted(f"m{i}{secrets.token_hex(6)}" for i in range(2))
    try:
        with nodes(etcd.endpoint, base, ids, ttl=3, metadata={"region": "eu"}) as started:
            yield Lab(started, registry, marker)
            specs = list(registry.specs())
            if specs:
                registry.destroy(specs)  # while the agents run, so they stop their units
            wait_for(lambda: not pids_of(marker), 15, "every unit process gone")
    finally:
        kill_by_pid(pids_of(marker))
        client.close()
