"""Each TLS cluster's own certificate authority, made and kept by the provisioning container.

The CA lives beside the database, on the container's volume, in
``<state dir>/pki/<cluster>/`` (0700; every file 0600): ``ca.pem`` and ``ca-key.pem``,
the container's own client certificate (``container.pem``, ``container-key.pem``: the
CLI, the panel, the monitor and the relay reach the cluster's etcd with it) and the
CA's CRL (``crl.pem``). The key is never printed, logged nor audited; the database keeps
only what was issued (serial, subject, kind, validity, revocation): what `revoke` and
renewal work from.

A node's key is made here and carried only in that node's user-data (`issue_node`),
which the container hands to the node's cloud or over SSH, never through the hosted
installer. When a node's certificate is due (`vulcano.pki.renewal_due`: 2/3 of its life) its
agent asks for a new one with a CSR of a key it made itself (`sign_renewal`): past
boot, no node key travels anywhere.
"""

from __future__ import annotations

import datetime
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from container.services.errors import ClusterNotFound, ServiceError
from container.store import Store
from vulcano import pki
from vulcano.etcd import TLSFiles
from vulcano.nodetls import NodeTLS

PKI_DIR = "pki"
CONTAINER_SUBJECT = "vulcano-container"
NODE_VALIDITY = pki.CERT_VALIDITY
LOOPBACK = "127.0.0.1"


class CertificateError(ServiceError, ValueError):
    """A certificate request we will not sign; says why."""


@dataclass(frozen=True)
class ClusterCA:
    """One cluster's CA as its directory keeps it."""

    cluster: str
    directory: Path
    ca: pki.Issued

    @property
    def cacert(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def crl_path(self) -> Path:
        return self.directory / "crl.pem"

    def client_files(self) -> TLSFiles:
        """The container's own --cacert, --cert and --key for the cluster's etcd."""
        return TLSFiles(
            self.cacert,
            self.directory / f"{_CONTAINER_FILE}.pem",
            self.directory / f"{_CONTAINER_FILE}-key.pem",
        )

    def crl(self) -> bytes:
        return self.crl_path.read_bytes()


_CONTAINER_FILE = "container"


def directory_of(store: Store, cluster: str) -> Path:
    return store.path.parent / PKI_DIR / cluster


def _write(path: Path, data: bytes) -> None:
    pki.write_pem(path, data, private=True)


def create(store: Store, cluster: str) -> ClusterCA:
    """Make the cluster's CA, the container's client certificate and an empty CRL.

    Whatever an earlier cluster of that name left is replaced (`forget` removes it)."""
    directory = directory_of(store, cluster)
    if directory.exists():
        forget(store, cluster)
    directory.parent.mkdir(mode=0o700, exist_ok=True)
    os.chmod(directory.parent, 0o700)
    directory.mkdir(mode=0o700)
    ca = pki.new_ca(f"vulcano cluster {cluster}")
    authority = ClusterCA(cluster, directory, ca)
    _write(authority.cacert, ca.cert_pem)
    _write(directory / "ca-key.pem", ca.key_pem)
    _write(authority.crl_path, pki.new_crl(ca, []))
    issued = pki.issue(ca, CONTAINER_SUBJECT, "client")
    files = authority.client_files()
    assert files.cert is not None and files.key is not None
    _write(files.key, issued.key_pem)
    _write(files.cert, issued.cert_pem)
    _record(store, cluster, issued.cert, "client")
    return authority


def load(store: Store, cluster: str) -> ClusterCA:
    """The cluster's CA; ClusterNotFound when the container keeps none for it."""
    directory = directory_of(store, cluster)
    try:
        ca = pki.Issued(
            (directory / "ca.pem").read_bytes(), (directory / "ca-key.pem").read_bytes()
        )
    except FileNotFoundError:
        raise ClusterNotFound(f"cluster {cluster!r} has no CA in {directory.parent}") from None
    return ClusterCA(cluster, directory, ca)


def forget(store: Store, cluster: str) -> None:
    """Remove the cluster's CA directory and its certificates' records."""
    shutil.rmtree(directory_of(store, cluster), ignore_errors=True)
    with store.transaction() as conn:
        conn.execute("DELETE FROM certificates WHERE cluster = ?", (cluster,))


def _record(store: Store, cluster: str, cert: x509.Certificate, kind: str) -> None:
    subject = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO certificates (cluster, serial, subject, kind, issued_at, not_after) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                cluster,
                f"{cert.serial_number:x}",
                str(subject),
                kind,
                time.time(),
                cert.not_valid_after_utc.timestamp(),
            ),
        )


def node_sans(node_name: str, ip: str | None) -> tuple[list[str], list[str]]:
    """A node certificate's IP and DNS SANs: its address and loopback (its agent and
    its member's own gateway dial 127.0.0.1), its name and localhost."""
    ips = [ip, LOOPBACK] if ip and ip != LOOPBACK else [LOOPBACK]
    return ips, [node_name, "localhost"]


def issue_node(
    store: Store,
    cluster: str,
    node_name: str,
    ip: str | None,
    *,
    valid_for: datetime.timedelta = NODE_VALIDITY,
    not_before: datetime.datetime | None = None,
) -> NodeTLS:
    """A new key and certificate for one node, recorded, with the CA and its CRL.

    With an address the certificate is a ``peer`` one (server and client): its member's
    listeners and its agent. Without (found at boot) it can only be a client's: etcd
    checks the address a server certificate names, so such a node cannot be a member.
    """
    authority = load(store, cluster)
    if ip:
        ips, dns = node_sans(node_name, ip)
        issued = pki.issue(
            authority.ca,
            node_name,
            "peer",
            ips=ips,
            dns=dns,
            valid_for=valid_for,
            not_before=not_before,
        )
        kind = "peer"
    else:
        issued = pki.issue(
            authority.ca, node_name, "client", valid_for=valid_for, not_before=not_before
        )
        kind = "client"
    _record(store, cluster, issued.cert, kind)
    return NodeTLS(
        ca_pem=authority.ca.cert_pem.decode(),
        cert_pem=issued.cert_pem.decode(),
        key_pem=issued.key_pem.decode(),
        crl_pem=authority.crl().decode(),
    )


def revoked_serials(store: Store, cluster: str) -> list[int]:
    with store.read() as conn:
        rows = conn.execute(
            "SELECT serial FROM certificates WHERE cluster = ? AND revoked_at > 0", (cluster,)
        ).fetchall()
    return [int(r["serial"], 16) for r in rows]


def revoke(store: Store, cluster: str, subject: str) -> tuple[list[int], bytes]:
    """Revoke every certificate issued to ``subject`` (a node's name): the serials newly
    revoked, and the CA's CRL now (written to ``crl.pem``; the caller distributes it)."""
    if subject == CONTAINER_SUBJECT:
        raise CertificateError("the container's own certificate is not a machine's")
    authority = load(store, cluster)
    with store.transaction() as conn:
        rows = conn.execute(
            "SELECT serial FROM certificates WHERE cluster = ? AND subject = ? AND revoked_at = 0",
            (cluster, subject),
        ).fetchall()
        conn.execute(
            "UPDATE certificates SET revoked_at = ? WHERE cluster = ? AND subject = ? "
            "AND revoked_at = 0",
            (time.time(), cluster, subject),
        )
    crl = pki.new_crl(authority.ca, revoked_serials(store, cluster))
    _write(authority.crl_path, crl)
    return [int(r["serial"], 16) for r in rows], crl


def sign_renewal(
    store: Store,
    cluster: str,
    node_name: str,
    ip: str | None,
    csr_pem: bytes,
    *,
    valid_for: datetime.timedelta = NODE_VALIDITY,
) -> bytes:
    """A renewed certificate (PEM) for a node's own new key, from its CSR.

    Only a node the CA issued to and has not revoked is renewed; the certificate names
    what the container knows of the node (its name and address), not what the CSR asks.
    """
    public = csr_public_key(node_name, csr_pem, "renewal request")
    with store.read() as conn:
        rows = conn.execute(
            "SELECT kind, revoked_at FROM certificates WHERE cluster = ? AND subject = ? "
            "ORDER BY issued_at DESC",
            (cluster, node_name),
        ).fetchall()
    if not rows:
        raise CertificateError(f"{node_name}: no certificate was issued to it in {cluster!r}")
    if any(r["revoked_at"] for r in rows):
        raise CertificateError(f"{node_name}: its certificates were revoked")
    kind: pki.Kind = "peer" if rows[0]["kind"] == "peer" and ip else "client"
    return sign_key(store, cluster, node_name, ip, public, kind, valid_for=valid_for)


def csr_public_key(node_name: str, csr_pem: bytes, what: str) -> ec.EllipticCurvePublicKey:
    """The EC key a CSR is for, once its signature checks out; CertificateError else."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise CertificateError(f"{node_name}: the {what} is not a PEM CSR") from None
    if not csr.is_signature_valid:
        raise CertificateError(f"{node_name}: the {what}'s signature does not verify")
    public = csr.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise CertificateError(f"{node_name}: the {what}'s key is not an EC key")
    return public


def sign_key(
    store: Store,
    cluster: str,
    node_name: str,
    ip: str | None,
    public: ec.EllipticCurvePublicKey,
    kind: pki.Kind,
    *,
    valid_for: datetime.timedelta = NODE_VALIDITY,
) -> bytes:
    """A node's certificate (PEM) for a key it made itself, recorded: a ``peer`` one
    names its address and loopback, a ``client`` one no address."""
    authority = load(store, cluster)
    ips, dns = node_sans(node_name, ip) if kind == "peer" else ([], [])
    issued = pki.issue(
        authority.ca, node_name, kind, ips=ips, dns=dns, valid_for=valid_for, public_key=public
    )
    _record(store, cluster, issued.cert, kind)
    return issued.cert_pem
