"""A node's etcd TLS material in its user-data: the cluster's CA, the node's certificate
and key, the CA's CRL, written under `TLS_DIR` where etcd and the agent read them.

One certificate per node serves every role its etcd member and agent have: the member's
client and peer listeners (serverAuth) and the member's and the agent's connections
(clientAuth); its SANs are the node's address and loopback (`container.services.clusterca`
issues it). etcd reads the files anew on every handshake, so a renewed certificate or
a new CRL written over them takes effect without a restart.

A member whose address is found at boot cannot be given its certificate in advance (it
must name that address): its user-data carries an `Enrolment` instead of a certificate
and key, and node-certificate.sh makes the key on the node, sends a CSR with the address
to the provisioning container's panel (HTTPS, pinned to the panel's key, with a token
only that node's user-data holds) and writes the certificate it gets back, before etcd
starts (`container.services.enrolment` signs it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vulcano import pki
from vulcano.cloudconfig import InputError

# Inside etcd's configuration directory, which the Flatcar/CoreOS etcd container mounts.
TLS_DIR = "/etc/etcd/tls"
CA_PATH = f"{TLS_DIR}/ca.pem"
CERT_PATH = f"{TLS_DIR}/node.pem"
KEY_PATH = f"{TLS_DIR}/node-key.pem"
CRL_PATH = f"{TLS_DIR}/crl.pem"
# What node-certificate asks the panel with (root's, 0600; deleted once it has its
# certificate), and where the script is (Flatcar's /usr is read-only).
ENROL_PATH = "/etc/vulcano/enrol.env"
ENROL_SCRIPT = "node-certificate.sh"
ENROL_SCRIPT_PATHS = {
    "cloud-init": "/usr/local/lib/vulcano/node-certificate",
    "flatcar": "/opt/vulcano/lib/node-certificate",
    "coreos-legacy": "/opt/vulcano/lib/node-certificate",
}
_ENROL_URL = re.compile(r"https://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._~%/-]*)?")
_PIN = re.compile(r"sha256//[A-Za-z0-9+/]{43}=")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,128}")
_OWNER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


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
class Enrolment:
    """How a node gets its certificate at boot: the panel's URL for it, the panel's key
    pin (curl's ``--pinnedpubkey`` form, ``sha256//…``) and the node's enrolment token."""

    url: str
    pin: str
    token: str

    def env(self, name: str, owner: str, address: str) -> str:
        """The enrolment file node-certificate reads (``address``: the node's, or the
        mark node-address fills in). Every value is checked to need no quoting."""
        values = {
            "DIR": TLS_DIR,
            "URL": self.url,
            "PIN": self.pin,
            "TOKEN": self.token,
            "NAME": name,
            "OWNER": owner,
            "ADDRESS": address,
        }
        return "".join(f"enrol_{key.lower()}='{value}'\n" for key, value in values.items())


@dataclass(frozen=True)
class NodeTLS:
    """The PEM texts a node boots with: its certificate and key, or (``enrolment``)
    what it asks for its certificate with at boot."""

    ca_pem: str
    cert_pem: str
    key_pem: str
    crl_pem: str
    enrolment: Enrolment | None = None

    def files(self) -> list[NodeFile]:
        files = [NodeFile(CA_PATH, self.ca_pem, False)]
        if self.enrolment is None:
            files.append(NodeFile(CERT_PATH, self.cert_pem, False))
            files.append(NodeFile(KEY_PATH, self.key_pem, True))
        files.append(NodeFile(CRL_PATH, self.crl_pem, False))
        return files


def check(tls: NodeTLS) -> None:
    """Raise InputError("tls", ...) unless the material is a CA, a certificate it issued
    with its key, and a CRL it signed."""
    if tls.enrolment is not None:
        _check_enrolment(tls)
        return
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


def check_owner(owner: str) -> None:
    """Raise InputError unless ``owner`` can be the enrolled files' user."""
    if not _OWNER.fullmatch(owner):
        raise InputError("tls", f"enrolment: {owner!r} is not a user name")


def _check_enrolment(tls: NodeTLS) -> None:
    enrolment = tls.enrolment
    assert enrolment is not None
    if tls.cert_pem or tls.key_pem:
        raise InputError("tls", "a node enrolling at boot is given no certificate nor key")
    if not _ENROL_URL.fullmatch(enrolment.url):
        raise InputError("tls", "enrolment: the panel's URL must be https://host[:port]/path")
    if not _PIN.fullmatch(enrolment.pin):
        raise InputError("tls", "enrolment: the pin must be sha256//<base64 SHA-256>")
    if not _TOKEN.fullmatch(enrolment.token):
        raise InputError("tls", "enrolment: the token must be 32-128 URL-safe characters")
    try:
        pki.load_cert(tls.ca_pem.encode(), "CA certificate")
        pki.crl_serials(tls.crl_pem.encode(), tls.ca_pem.encode())
    except pki.PKIError as exc:
        raise InputError("tls", str(exc)) from None
