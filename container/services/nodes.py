"""Every node's user-data, in its cluster's flavour, made from what the database keeps.

Node N (1-based) of cluster C is ``C-N``: its hostname and its etcd member name. It joins
the cluster's etcd through the discovery URL (the first `etcd_size` to register are the
members, the rest etcd proxies), runs vulcano-agent as a systemd unit, lets the
provisioning container log in with its SSH key (`identity.ensure_container_key`), and
carries the cluster's name as machine metadata (``cluster=C``). Its address is the one
given for it or, by default, found at boot (`vulcano.nodeconfig.AUTO_IP`).

Documents are checked as the installer checks its own: the renderer's quoting, shape and
64 KiB checks always, the real validators (`cloud-init schema`, `ignition-validate`)
when they are installed.
"""

from __future__ import annotations

from pathlib import Path

from container.services.clusters import ClusterRecord, get_cluster
from container.services.errors import ClusterInputError
from container.services.identity import ensure_container_key
from container.store import Store
from vulcano import nodeconfig, validators
from vulcano.cloudconfig import Document, InputError

CLUSTER_METADATA_KEY = "cluster"


def state_dir_of(store: Store) -> Path:
    """The state directory: the database lives in it, beside the container's key."""
    return store.path.parent


def node_spec(record: ClusterRecord, node: int, ssh_key: str) -> nodeconfig.NodeSpec:
    """What node ``node`` of the cluster boots with."""
    if not 1 <= node <= record.size:
        raise ClusterInputError(
            "--node", f"cluster {record.name!r} has nodes 1 to {record.size}, not {node}"
        )
    return nodeconfig.NodeSpec(
        name=record.node_name(node),
        ip=record.node_ip(node),
        discovery_url=record.discovery_url,
        flavour=record.flavour,
        metadata=((CLUSTER_METADATA_KEY, record.name),),
        agent_bundle_url=record.agent_bundle_url,
        ssh_keys=(ssh_key,),
    )


def _render(record: ClusterRecord, node: int, ssh_key: str) -> Document:
    try:
        return nodeconfig.render_node(node_spec(record, node, ssh_key))
    except InputError as exc:
        raise ClusterInputError(exc.field, exc.message) from None


def render(record: ClusterRecord, node: int, ssh_key: str, *, tools: bool = True) -> Document:
    """Node ``node``'s user-data; with ``tools`` also checked by the real validator."""
    document = _render(record, node, ssh_key)
    if tools:
        validators.validate_with_tools(document)
    return document


def check_renders(store: Store, record: ClusterRecord) -> None:
    """Render every node of a cluster not stored yet; the first is also given to the real
    validator (the others differ from it only in quoted values, which the shape check
    covers)."""
    key = ensure_container_key(state_dir_of(store))
    for node in range(1, record.size + 1):
        render(record, node, key, tools=node == 1)


def user_data(store: Store, name: str, node: int = 1) -> Document:
    """The user-data node ``node`` of the named cluster boots from."""
    record = get_cluster(store, name)
    return render(record, node, ensure_container_key(state_dir_of(store)))
