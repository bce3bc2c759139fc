"""Certificates for TLS members whose address is found at boot: enrolment at the panel.

A member's certificate must name the address etcd sees it at. When the user gave the
address (``--ip``) the container makes the node's key and certificate and carries them
in its user-data (`container.services.clusterca.issue_node`). When the address is found
at boot, the user-data carries instead an enrolment (`vulcano.nodetls.Enrolment`): the
panel's URL for it, the panel's key pin, and a token made for that node alone. At boot
the node makes its key, and POSTs a CSR with its address to
``/join/<cluster>/<node>/certificate`` (`container.panel.join`); `sign` checks the token
and signs a peer certificate for the node's name and that address. The node's key never
leaves it.

Tokens are kept as their SHA-256 with an expiry (`policy.ENROL_TOKEN_TTL`), one per
rendering of the node's user-data. A token signs for one key only: the first CSR's
(asked again with that key, after an answer lost on the way, it signs again). Every
certificate is recorded, so `machine remove` revokes it with the node's others.

The panel's URL and pin are what `vulcano serve` recorded at its start
(`record_panel`): the nodes reach the panel there and check its key, whatever names its
certificate holds.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization

from container import policy
from container.services import clusterca
from container.services.clusterca import CertificateError
from container.services.clusters import ClusterRecord, get_cluster
from container.services.errors import (
    ClusterInputError,
    ClusterNotFound,
    EnrolmentError,
    NodeNotReady,
)
from container.store import Store
from vulcano import nodeconfig, pki
from vulcano.nodetls import Enrolment

ENDPOINT_FILE = "panel-endpoint.json"
TOKEN_BYTES = 32
MAX_CSR_BYTES = 4096


@dataclass(frozen=True)
class PanelEndpoint:
    """Where nodes reach the panel, and its key's pin (base64 SHA-256 of its SPKI)."""

    url: str
    spki_pin: str


def record_panel(state_dir: Path, endpoint: PanelEndpoint | None) -> None:
    """Keep where nodes reach the panel (None: it serves no HTTPS nodes can use)."""
    path = state_dir / ENDPOINT_FILE
    if endpoint is None:
        path.unlink(missing_ok=True)
        return
    data = json.dumps({"url": endpoint.url, "spki_pin": endpoint.spki_pin}).encode()
    pki.write_pem(path, data + b"\n", private=True)


def panel_endpoint(state_dir: Path) -> PanelEndpoint | None:
    """What `vulcano serve` recorded at its last start, or None."""
    try:
        data = json.loads((state_dir / ENDPOINT_FILE).read_text())
        return PanelEndpoint(str(data["url"]).rstrip("/"), str(data["spki_pin"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def certificate_path(cluster: str, node: int) -> str:
    """The panel's path a node asks for its certificate at (container.panel.join)."""
    return f"/join/{quote(cluster, safe='')}/{node}/certificate"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="replace")).hexdigest()


def check_ready(state_dir: Path, tls: bool, members: int, node_ips: tuple[str, ...]) -> None:
    """Raise ClusterInputError("--ip") when some member would get its certificate at boot
    (TLS, fewer addresses given than the cluster has ``members``) and no panel is there
    to ask."""
    missing = missing_panel(state_dir) if tls and len(node_ips) < members else ""
    if missing:
        raise ClusterInputError("--ip", missing)


def missing_panel(state_dir: Path) -> str:
    """Why a member's user-data cannot be made without the panel; "" when it can."""
    if panel_endpoint(state_dir) is not None:
        return ""
    return (
        "a member whose address is not given (--ip) gets its certificate from the panel "
        "at boot, and no panel serving HTTPS has started here (vulcano serve; or give "
        "the members' addresses with --ip, or --no-tls)"
    )


def enrolment(store: Store, record: ClusterRecord, node: int) -> Enrolment:
    """A new enrolment for node ``node``: the panel's URL for it, its pin and a token."""
    endpoint = panel_endpoint(store.path.parent)
    if endpoint is None:
        raise NodeNotReady(missing_panel(store.path.parent))
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = time.time()
    with store.transaction() as conn:
        conn.execute("DELETE FROM enrolments WHERE expires <= ?", (now,))
        conn.execute(
            "INSERT INTO enrolments (token_hash, cluster, node, made_at, expires) "
            "VALUES (?, ?, ?, ?, ?)",
            (_digest(token), record.name, node, now, now + policy.ENROL_TOKEN_TTL),
        )
    url = endpoint.url + certificate_path(record.name, node)
    return Enrolment(url=url, pin=f"sha256//{endpoint.spki_pin}", token=token)


def forget(store: Store, cluster: str) -> None:
    """End every enrolment token of the cluster."""
    with store.transaction() as conn:
        conn.execute("DELETE FROM enrolments WHERE cluster = ?", (cluster,))


@dataclass(frozen=True)
class Enrolled:
    """A certificate signed at boot: its PEM, serial, node name and address."""

    cert_pem: bytes
    serial: str
    node_name: str
    address: str


def _address(text: str) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise EnrolmentError(f"address: {text!r} is not an IP address", 400) from None
    if address.is_unspecified or address.is_multicast:
        raise EnrolmentError(f"address: {text} cannot be a member's address", 400)
    return str(address)


def sign(
    store: Store, cluster: str, node: int, token: str, csr_pem: bytes, address: str
) -> Enrolled:
    """Sign node ``node``'s certificate for the key of ``csr_pem`` and ``address``, when
    ``token`` is a live enrolment token of that node; EnrolmentError says why not."""
    row = _token_row(store, token)
    if row is None or row["cluster"] != cluster or int(row["node"]) != node:
        raise EnrolmentError("token: not an enrolment token of this node")
    if float(row["expires"]) <= time.time():
        raise EnrolmentError(
            f"token: expired; make this node's user-data again (vulcano cluster user-data "
            f"{cluster} --node {node})"
        )
    try:
        record = get_cluster(store, cluster)
    except ClusterNotFound:
        raise EnrolmentError("token: not an enrolment token of this node") from None
    if _revoked_since(store, record.node_name(node), row):
        raise EnrolmentError("token: this node's certificates were revoked after it was made")
    if len(csr_pem) > MAX_CSR_BYTES:
        raise EnrolmentError(f"request: a CSR of at most {MAX_CSR_BYTES} bytes", 400)
    name = record.node_name(node)
    given = record.node_ip(node)
    ip = _address(address) if given == nodeconfig.AUTO_IP else given
    try:
        public = clusterca.csr_public_key(name, csr_pem, "certificate request")
    except CertificateError as exc:
        raise EnrolmentError(f"request: {exc}", 400) from None
    key_id = hashlib.sha256(
        public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).hexdigest()
    with store.transaction() as conn:
        claimed = conn.execute(
            "UPDATE enrolments SET used_key = ? WHERE token_hash = ? AND used_key IN ('', ?)",
            (key_id, row["token_hash"], key_id),
        ).rowcount
    if not claimed:
        raise EnrolmentError("token: used already, for another key")
    cert_pem = clusterca.sign_key(store, cluster, name, ip, public, "peer")
    serial = f"{pki.load_cert(cert_pem).serial_number:x}"
    return Enrolled(cert_pem, serial, name, ip)


def _token_row(store: Store, token: str) -> sqlite3.Row | None:
    with store.read() as conn:
        row: sqlite3.Row | None = conn.execute(
            "SELECT token_hash, cluster, node, made_at, expires FROM enrolments "
            "WHERE token_hash = ?",
            (_digest(token),),
        ).fetchone()
    return row


def _revoked_since(store: Store, node_name: str, row: sqlite3.Row) -> bool:
    """Whether the node's certificates were revoked (its machine removed) after the
    token was made: a removed machine's user-data enrols no more."""
    with store.read() as conn:
        found = conn.execute(
            "SELECT 1 FROM certificates WHERE cluster = ? AND subject = ? AND revoked_at >= ?",
            (row["cluster"], node_name, float(row["made_at"])),
        ).fetchone()
    return found is not None
