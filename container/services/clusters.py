"""The clusters this provisioning container manages, as its database remembers them.

A cluster is a name, its planned size, the user-data flavour its nodes boot from, its
overlay network, the discovery URL its etcd members meet through, and the etcd client
endpoints the container reaches it at (learned as its members come up). `connect()`
makes the `Cluster` connection every other service function talks through.

`create()` checks every field, asks the hosted installer for a discovery URL and
renders every node's user-data before it stores anything: a refused cluster leaves no
row behind. Its overlay config is kept here until its etcd is reachable
(`container.services.clusternetwork`); its nodes' user-data is made on demand
(`container.services.nodes`). A cluster made with ``tls`` has its own CA
(`container.services.clusterca`, made once its row is stored); `connect()` then reaches
its etcd with the container's client certificate.
"""

from __future__ import annotations

import ipaddress
import json
import sqlite3
import time
from dataclasses import dataclass, replace

from container.services import clusterca
from container.services.cluster import Cluster
from container.services.errors import ClusterExists, ClusterInputError, ClusterNotFound
from container.services.installer import Installer
from container.store import Store
from vulcano import cloudconfig, network, nodeconfig
from vulcano.keyspace import DEFAULT_PREFIX

DEFAULT_FLAVOUR = "cloud-init"
DEFAULT_NETWORK = "10.244.0.0/16"
# Stands for the discovery URL while a new cluster's user-data is checked.
_CHECK_DISCOVERY_URL = "https://discovery.invalid/00000000000000000000000000000000"


@dataclass(frozen=True)
class ClusterRecord:
    """One cluster as the database keeps it; ``endpoints`` are comma-separated etcd URLs.

    ``node_ips`` are the addresses given for nodes 1, 2, …; a node past them finds its
    address at boot. ``network_written_at`` is when the overlay config reached its etcd
    (0: not yet, it is only in ``network_config`` here).
    """

    name: str
    size: int
    flavour: str
    network: str
    discovery_url: str = ""
    endpoints: str = ""
    prefix: str = DEFAULT_PREFIX
    created_at: float = 0.0
    etcd_size: int = 0
    network_config: str = ""
    network_written_at: float = 0.0
    node_ips: tuple[str, ...] = ()
    agent_bundle_url: str = ""
    join_token_expires: float = 0.0
    tls: bool = False  # its etcd on mutual TLS, with its own CA (`clusterca`)

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
            etcd_size=int(row["etcd_size"]),
            network_config=row["network_config"],
            network_written_at=float(row["network_written_at"]),
            node_ips=tuple(json.loads(row["node_ips"] or "[]")),
            agent_bundle_url=row["agent_bundle_url"],
            join_token_expires=float(row["join_token_expires"]),
            tls=bool(row["tls"]),
        )

    def node_name(self, node: int) -> str:
        return node_name(self.name, node)

    def node_ip(self, node: int) -> str:
        """The node's given address, or nodeconfig.AUTO_IP (found at boot)."""
        return self.node_ips[node - 1] if node <= len(self.node_ips) else nodeconfig.AUTO_IP


def node_name(cluster: str, node: int) -> str:
    """Node ``node`` of the cluster: its etcd member name and hostname."""
    return f"{cluster}-{node}"


def etcd_size(size: int) -> int:
    """How many etcd members a cluster of ``size`` machines has: 1, 3 or 5 (odd, so a
    majority survives a loss); the nodes past them join as etcd proxies."""
    return 1 if size < 3 else 3 if size < 5 else 5


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
    """A connection to the named cluster's etcd (opened on first use; close() it): with
    the container's own client certificate when the cluster is on TLS."""
    record = get_cluster(store, name)
    if not record.endpoints:
        raise ClusterNotFound(
            f"cluster {name!r} has no etcd endpoints yet: none of its members has come up"
        )
    tls = clusterca.load(store, name).client_files() if record.tls else None
    return Cluster(record.endpoints, record.prefix, tls=tls, name=name)


# --- making and forgetting clusters -----------------------------------------------------


def check_fields(
    name: str,
    size: int,
    flavour: str,
    cidr: str,
    node_ips: tuple[str, ...] = (),
    tls: bool = False,
) -> network.NetworkConfig:
    """Raise ClusterInputError naming the first field (as the CLI's flag) we cannot take;
    the cluster's network config otherwise."""
    try:
        cloudconfig.check_cluster_name(name)
    except cloudconfig.InputError as exc:
        raise ClusterInputError("NAME", exc.message) from None
    try:
        cloudconfig.check_size(size)
    except cloudconfig.InputError as exc:
        raise ClusterInputError("--size", exc.message) from None
    if not cloudconfig.DNS_LABEL.fullmatch(node_name(name, size)):
        raise ClusterInputError(
            "NAME", f"too long: its node names ({node_name(name, size)}) must fit 63 characters"
        )
    if flavour not in nodeconfig.FLAVOURS:
        raise ClusterInputError("--flavour", f"choose one of {', '.join(nodeconfig.FLAVOURS)}")
    try:
        config = network.parse({"network": cidr})
    except network.NetworkConfigError as exc:
        # its message names the config's field ("network: ..."): the flag names it here
        raise ClusterInputError("--network", str(exc).removeprefix("network: ")) from None
    if config.subnet_count < size:
        raise ClusterInputError(
            "--network",
            f"{config.network} holds {config.subnet_count} /{config.subnet_len} node subnets, "
            f"fewer than the {size} nodes",
        )
    if len(node_ips) > size:
        raise ClusterInputError("--ip", f"{len(node_ips)} addresses for {size} nodes")
    for ip in node_ips:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise ClusterInputError("--ip", f"{ip!r} is not an IPv4 or IPv6 address") from None
    if len(set(node_ips)) != len(node_ips):
        raise ClusterInputError("--ip", "an address is given twice")
    return config


def create(
    store: Store,
    name: str,
    size: int,
    flavour: str = DEFAULT_FLAVOUR,
    network_cidr: str = DEFAULT_NETWORK,
    *,
    installer: Installer,
    node_ips: tuple[str, ...] = (),
    agent_bundle_url: str = "",
    prefix: str = DEFAULT_PREFIX,
    tls: bool = False,
) -> ClusterRecord:
    """Make a cluster: checked, every node's user-data rendered, its discovery URL from
    the installer, then stored, and with ``tls`` its CA made. Nothing is stored when
    any step fails."""
    from container.services import enrolment, nodes  # here: they import this module

    config = check_fields(name, size, flavour, network_cidr, node_ips, tls)
    if _exists(store, name):
        raise ClusterExists(
            f"a cluster named {name!r} exists already (vulcano cluster show {name})"
        )
    members = etcd_size(size)
    record = ClusterRecord(
        name=name,
        size=size,
        flavour=flavour,
        network=str(config.network),
        discovery_url=_CHECK_DISCOVERY_URL,
        prefix=prefix,
        created_at=time.time(),
        etcd_size=members,
        network_config=config.to_json(),
        node_ips=node_ips,
        agent_bundle_url=agent_bundle_url,
        tls=tls,
    )
    enrolment.check_ready(store.path.parent, tls, members, node_ips)
    # Rendered before the installer is asked: each discovery URL counts in the install's
    # quota, so none is spent on a cluster that could not be stored.
    nodes.check_renders(store, record)
    record = replace(record, discovery_url=installer.new_discovery_url(members))
    nodes.check_renders(store, record, tools=False)
    try:
        with store.transaction() as conn:
            conn.execute(
                "INSERT INTO clusters (name, size, flavour, network, discovery_url, prefix, "
                "created_at, etcd_size, network_config, node_ips, agent_bundle_url, tls) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.name,
                    record.size,
                    record.flavour,
                    record.network,
                    record.discovery_url,
                    record.prefix,
                    record.created_at,
                    record.etcd_size,
                    record.network_config,
                    json.dumps(list(record.node_ips)),
                    record.agent_bundle_url,
                    int(record.tls),
                ),
            )
    except sqlite3.IntegrityError:
        raise ClusterExists(f"a cluster named {name!r} exists already") from None
    if tls:
        # made once the row is ours: a concurrent create of the name never touches it
        try:
            clusterca.create(store, name)
        except BaseException:
            _delete_row(store, name)
            raise
    return get_cluster(store, name)


def _delete_row(store: Store, name: str) -> None:
    with store.transaction() as conn:
        conn.execute("DELETE FROM clusters WHERE name = ?", (name,))


def _exists(store: Store, name: str) -> bool:
    with store.read() as conn:
        row = conn.execute("SELECT 1 FROM clusters WHERE name = ?", (name,)).fetchone()
    return row is not None


def delete(store: Store, name: str) -> ClusterRecord:
    """Forget the cluster (its machines keep running; their user-data is no longer served)."""
    with store.transaction() as conn:
        row = conn.execute("SELECT * FROM clusters WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise ClusterNotFound(f"no cluster named {name!r} (vulcano cluster list shows them)")
        conn.execute("DELETE FROM clusters WHERE name = ?", (name,))
    record = ClusterRecord.from_row(row)
    if record.tls:
        from container.services import enrolment  # here: it imports this module

        enrolment.forget(store, name)
        clusterca.forget(store, name)
    return record
