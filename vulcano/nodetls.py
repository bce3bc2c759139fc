"""A node's etcd TLS material in its user-data: the cluster's CA, the node's certificate
and key, the CA's CRL, written under `TLS_DIR` where etcd and the agent read them.

One certificate per node serves every role its etcd member and agent have: the member's
client and peer listeners (serverAuth) and the member's and the agent's connections
(clientAuth); its SANs are the node's address and loopback (`container.services.clusterca`
issues it). etcd reads the files anew on every handshake, so a renewed certificate or
a new CRL written over them takes effect without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass

from vulcano import pki
from vulcano.cloudconfig import InputError

# Inside etcd's configuration directory, which the Flatcar/CoreOS etcd container mounts.
TLS_DIR = "/etc/etcd/tls"
CA_PATH = f"{TLS_DIR}/ca.pem"
CERT_PATH = f"{TLS_DIR}/node.pem"
KEY_PATH = f"{TLS_DIR}/node-key.pem"
CRL_PATH = f"{TLS_DIR}/crl.pem"


@dataclass(frozen=True)
class NodeFile:
    """One file of the node's TLS material: its path, content and whether it is a key."""

    path: str
    content: str
    private: bool

    @property
    def mode(self) -> str:
        return "0600" if self.private else "0644"


@dataclass(frozen=True)
class NodeTLS:
    """The PEM texts a node boots with."""

    ca_pem: str
    cert_pem: str
    key_pem: str
    crl_pem: str

    def files(self) -> list[NodeFile]:
        return [
            NodeFile(CA_PATH, self.ca_pem, False),
            NodeFile(CERT_PATH, self.cert_pem, False),
            NodeFile(KEY_PATH, self.key_pem, True),
            NodeFile(CRL_PATH, self.crl_pem, False),
        ]


def check(tls: NodeTLS) -> None:
    """Raise InputError("tls", ...) unless the material is a CA, a certificate it issued
    with its key, and a CRL it signed."""
    try:
        ca = pki.load_cert(tls.ca_pem.encode(), "CA certificate")
        cert = pki.load_cert(tls.cert_pem.encode(), "node certificate")
        if cert.issuer != ca.subject:
            raise pki.PKIError("node certificate: not issued by the cluster's CA")
        if not pki.has_private_key(tls.key_pem.encode()):
            raise pki.PKIError("node key: not an unencrypted PEM private key")
        if not pki.key_matches(tls.cert_pem.encode(), tls.key_pem.encode()):
            raise pki.PKIError("node key: not the key of the node certificate")
        pki.crl_serials(tls.crl_pem.encode(), tls.ca_pem.encode())
    except pki.PKIError as exc:
        raise InputError("tls", str(exc)) from None
