"""Every node's user-data, in its cluster's flavour, made from what the database keeps.

Node N (1-based) of cluster C is ``C-N``: its hostname and its etcd member name. Nodes 1
to `etcd_size` are the etcd members, meeting through the discovery URL; a node past them
joins as an agent-only node: its etcd finds the cluster full (and is only a v2 proxy),
so its agent is given the members' client URLs — known once they came up (given
addresses, the endpoints recorded, or the discovery directory), so its user-data is
ready only then (NodeNotReady before). Every node runs vulcano-agent as a unit, lets the
provisioning container log in with its SSH key (`container.ssh.keys.public_key_line`), and
carries the cluster's name as machine metadata (``cluster=C``). Its address is the one
given for it or, by default, found at boot (`vulcano.nodeconfig.AUTO_IP`).

A TLS cluster's node also carries the cluster's CA, a key and certificate made for it
(`container.services.clusterca.issue_node`: made anew each time its user-data is made,
each one recorded, so `machine remove` revokes them all) and the CA's CRL; its URLs are
https://. A member whose address is found at boot carries an enrolment instead: it
makes its key then and gets its certificate from the panel (`enrolment`).

Documents are checked as the installer checks its own: the renderer's quoting, shape and
64 KiB checks always, the real validators (`cloud-init schema`, `ignition-validate`)
when they are installed.
"""

from __future__ import annotations

import functools
from pathlib import Path

from container.services import clusterca, discovery, enrolment
from container.services.clusters import ClusterRecord, get_cluster
from container.services.errors import ClusterInputError, NodeNotReady
from container.ssh import keys
from container.store import Store
from vulcano import nodeconfig, pki, validators
from vulcano.cloudconfig import Document, InputError
from vulcano.nodetls import Enrolment, NodeTLS

CLUSTER_METADATA_KEY = "cluster"
# The renderer's fields a user gives, as the CLI's flags name them.
_FLAGS = {"agent_bundle_url": "--agent-bundle-url", "ip": "--ip", "flavour": "--flavour"}
# What an agent-only node's agent is given while its cluster is only being checked.
_CHECK_ENDPOINTS = "http://127.0.0.1:2379"


def state_dir_of(store: Store) -> Path:
    """The state directory: the database lives in it, beside the container's key."""
    return store.path.parent


def is_member(record: ClusterRecord, node: int) -> bool:
    """Whether the node is one of the cluster's etcd members (else agent-only)."""
    return node <= record.etcd_size


def member_endpoints(record: ClusterRecord) -> str:
    """The members' client URLs, for agent-only nodes; "" while they are not known."""
    given = [record.node_ip(i) for i in range(1, record.etcd_size + 1)]
    if all(ip != nodeconfig.AUTO_IP for ip in given):
        port = nodeconfig.NodeSpec.client_port
        scheme = "https" if record.tls else "http"
        return ",".join(
            f"{scheme}://{ip}:{port}" if ":" not in ip else f"{scheme}://[{ip}]:{port}"
            for ip in given
        )
    if record.endpoints:
        return record.endpoints
    return ",".join(discovery.member_client_urls(record))


def node_spec(
    record: ClusterRecord,
    node: int,
    ssh_key: str,
    endpoints: str = "",
    tls: NodeTLS | None = None,
) -> nodeconfig.NodeSpec:
    """What node ``node`` of the cluster boots with (``endpoints``: the members', for an
    agent-only node; ``tls``: its TLS material, for a TLS cluster)."""
    if not 1 <= node <= record.size:
        raise ClusterInputError(
            "--node", f"cluster {record.name!r} has nodes 1 to {record.size}, not {node}"
        )
    if not is_member(record, node) and not endpoints:
        raise NodeNotReady(
            f"node {node} of cluster {record.name!r} joins as an agent-only node: its "
            f"user-data is ready once the {record.etcd_size} etcd member(s) (nodes 1-"
            f"{record.etcd_size}) have come up"
        )
    return nodeconfig.NodeSpec(
        name=record.node_name(node),
        ip=record.node_ip(node),
        discovery_url=record.discovery_url,
        flavour=record.flavour,
        metadata=((CLUSTER_METADATA_KEY, record.name),),
        agent_bundle_url=record.agent_bundle_url,
        ssh_keys=(ssh_key,),
        etcd_endpoints="" if is_member(record, node) else endpoints,
        tls=tls,
    )


def _render(
    record: ClusterRecord, node: int, ssh_key: str, endpoints: str, tls: NodeTLS | None
) -> Document:
    try:
        return nodeconfig.render_node(node_spec(record, node, ssh_key, endpoints, tls))
    except InputError as exc:
        raise ClusterInputError(_FLAGS.get(exc.field, exc.field), exc.message) from None


@functools.cache
def _check_tls() -> NodeTLS:
    """TLS material of a throwaway CA, as large as a cluster's: what a cluster not yet
    stored is checked with (its own CA is made once it is)."""
    ca = pki.new_ca("vulcano cluster check")
    issued = pki.issue(ca, "check", "peer", ips=["192.0.2.1", "127.0.0.1"], dns=["check"])
    return NodeTLS(
        ca.cert_pem.decode(),
        issued.cert_pem.decode(),
        issued.key_pem.decode(),
        pki.new_crl(ca, []).decode(),
    )


def _check_enrolment() -> NodeTLS:
    """What a member enrolling at boot is checked with while its cluster is not stored."""
    tls = _check_tls()
    url = "https://192.0.2.1:8443" + enrolment.certificate_path("check", 1)
    check = Enrolment(url, "sha256//" + "A" * 43 + "=", "A" * 43)
    return NodeTLS(tls.ca_pem, "", "", tls.crl_pem, enrolment=check)


def render(
    record: ClusterRecord,
    node: int,
    ssh_key: str,
    endpoints: str = "",
    *,
    tools: bool = True,
    tls: NodeTLS | None = None,
) -> Document:
    """Node ``node``'s user-data; with ``tools`` also checked by the real validator."""
    document = _render(record, node, ssh_key, endpoints, tls)
    if tools:
        validators.validate_with_tools(document)
    return document


def check_renders(store: Store, record: ClusterRecord, *, tools: bool = True) -> None:
    """Render every node of a cluster not stored yet; the first member and the first
    agent-only node are also given to the real validator (the others differ from them
    only in quoted values, which the shape check covers), unless not ``tools``."""
    key = keys.public_key_line(state_dir_of(store))
    for node in range(1, record.size + 1):
        checked = tools and node in (1, record.etcd_size + 1)
        endpoints = _CHECK_ENDPOINTS.replace("http:", "https:") if record.tls else _CHECK_ENDPOINTS
        tls = None
        if record.tls:
            tls = _check_enrolment() if _enrols(record, node) else _check_tls()
        render(record, node, key, endpoints, tools=checked, tls=tls)


def _enrols(record: ClusterRecord, node: int) -> bool:
    """Whether the node gets its certificate at boot: a TLS member, its address not given
    (an agent-only node's certificate names no address: it is made here)."""
    return record.tls and is_member(record, node) and record.node_ip(node) == nodeconfig.AUTO_IP


def user_data(store: Store, name: str, node: int = 1) -> Document:
    """The user-data node ``node`` of the named cluster boots from."""
    record = get_cluster(store, name)
    key = keys.public_key_line(state_dir_of(store))
    endpoints = ""
    if 1 <= node <= record.size and not is_member(record, node):
        endpoints = member_endpoints(record)
    node_spec(record, node, key, endpoints)  # refused before a key is made for it
    tls = None
    if _enrols(record, node):
        authority = clusterca.load(store, name)
        tls = NodeTLS(
            authority.ca.cert_pem.decode(),
            "",
            "",
            authority.crl().decode(),
            enrolment=enrolment.enrolment(store, record, node),
        )
    elif record.tls:
        ip = record.node_ip(node)
        address = None if ip == nodeconfig.AUTO_IP else ip
        tls = clusterca.issue_node(store, name, record.node_name(node), address)
    return render(record, node, key, endpoints, tls=tls)
