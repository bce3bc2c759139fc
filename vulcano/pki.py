"""A cluster's certificate authority: make a CA, issue etcd's certificates, keep them as PEM.

ECDSA P-256 keys throughout (what Go's TLS, so etcd, accepts besides RSA). Every
certificate is issued by a pure function of its inputs and the CA; the file helpers
write PEM atomically, private keys 0600. The kinds are etcd's roles:

- ``server``: a member's client listener (serverAuth; clientAuth too, because etcd's
  own gRPC gateway dials its listener with that certificate);
- ``peer``: a member talking to members (serverAuth and clientAuth);
- ``client``: an agent, the CLI, a balancer (clientAuth).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vulcano import certdates
from vulcano.errors import VulcanoError

Kind = Literal["server", "peer", "client"]
KINDS: tuple[Kind, ...] = ("server", "peer", "client")
CA_VALIDITY = datetime.timedelta(days=3650)
CERT_VALIDITY = datetime.timedelta(days=365)
# a certificate is renewed once this share of its life has passed
RENEW_AT = certdates.RENEW_AT
# a CRL names when the next one is due; ours are re-signed whenever a serial is added
CRL_VALIDITY = datetime.timedelta(days=3650)
# issued this long before "now", so a node whose clock is a little behind accepts it
CLOCK_SKEW = datetime.timedelta(minutes=5)
_DNS_NAME = re.compile(r"(?=.{1,253}\Z)([A-Za-z0-9*]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+")
_EKUS = {
    "server": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    "peer": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    "client": [ExtendedKeyUsageOID.CLIENT_AUTH],
}


class PKIError(VulcanoError, ValueError):
    """A certificate request or a PEM file we cannot use; says which part."""


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        return load_cert(self.cert_pem)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _validity(
    not_before: datetime.datetime | None, valid_for: datetime.timedelta
) -> tuple[datetime.datetime, datetime.datetime]:
    if valid_for <= datetime.timedelta(0):
        raise PKIError(f"validity {valid_for} must be positive")
    start = not_before if not_before is not None else _now() - CLOCK_SKEW
    if start.tzinfo is None:
        raise PKIError("not_before must carry a time zone")
    return start, start + valid_for


def _name(common_name: str) -> x509.Name:
    if not common_name or not common_name.isprintable() or len(common_name) > 64:
        raise PKIError(f"common name {common_name!r} must be 1-64 printable characters")
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def new_key_pem() -> bytes:
    """A new P-256 private key, PEM (PKCS#8, unencrypted: etcd reads it as it is)."""
    return _key_pem(ec.generate_private_key(ec.SECP256R1()))


def new_ca(
    common_name: str,
    *,
    valid_for: datetime.timedelta = CA_VALIDITY,
    not_before: datetime.datetime | None = None,
) -> Issued:
    """A self-signed CA that may sign leaf certificates only (path length 0)."""
    start, end = _validity(not_before, valid_for)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def subject_alt_names(ips: Iterable[str] = (), dns: Iterable[str] = ()) -> list[x509.GeneralName]:
    """SANs from IP addresses and DNS names; PKIError names the first bad one."""
    names: list[x509.GeneralName] = []
    for raw in ips:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(raw)))
        except ValueError:
            raise PKIError(f"SAN {raw!r} is not an IP address") from None
    for raw in dns:
        if not _DNS_NAME.fullmatch(raw):
            raise PKIError(f"SAN {raw!r} is not a DNS name")
        names.append(x509.DNSName(raw))
    return names


def leaf_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public: ec.EllipticCurvePublicKey,
    start: datetime.datetime,
    end: datetime.datetime,
    ekus: list[x509.ObjectIdentifier],
) -> x509.CertificateBuilder:
    """A leaf certificate's builder: not a CA, signing only, the given extended key
    usages and its key's identifier (SANs and signing are the caller's)."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )


def issue(
    ca: Issued,
    common_name: str,
    kind: Kind,
    *,
    ips: Iterable[str] = (),
    dns: Iterable[str] = (),
    valid_for: datetime.timedelta = CERT_VALIDITY,
    not_before: datetime.datetime | None = None,
    public_key: ec.EllipticCurvePublicKey | None = None,
) -> Issued:
    """A leaf certificate of ``kind`` signed by ``ca``, with a new key (or for
    ``public_key``, a CSR's: then the Issued's key_pem is empty).

    Server and peer certificates need at least one SAN: Go checks the name it dialled
    against the SANs only, never the common name.
    """
    if kind not in KINDS:
        raise PKIError(f"kind {kind!r} must be one of {', '.join(KINDS)}")
    sans = subject_alt_names(ips, dns)
    if kind != "client" and not sans:
        raise PKIError(f"a {kind} certificate needs an IP or DNS name to be checked against")
    start, end = _validity(not_before, valid_for)
    ca_cert = load_cert(ca.cert_pem)
    ca_key = load_key(ca.key_pem)
    if end > ca_cert.not_valid_after_utc:
        end = ca_cert.not_valid_after_utc  # never outlive the CA that vouches for it
    key = ec.generate_private_key(ec.SECP256R1()) if public_key is None else None
    public = key.public_key() if key is not None else public_key
    assert public is not None
    builder = leaf_builder(
        _name(common_name), ca_cert.subject, public, start, end, _EKUS[kind]
    ).add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
        critical=False,
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key) if key else b"")


def new_crl(
    ca: Issued,
    serials: Iterable[int],
    *,
    valid_for: datetime.timedelta = CRL_VALIDITY,
    at: datetime.datetime | None = None,
) -> bytes:
    """A CRL (PEM) signed by ``ca`` revoking ``serials``: what etcd's --client-crl-file
    reads, on every handshake (etcd 3.4 reads the file anew for each connection)."""
    now = at if at is not None else _now()
    ca_cert = load_cert(ca.cert_pem)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - CLOCK_SKEW)
        .next_update(now + valid_for)
    )
    for serial in sorted(set(serials)):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    crl = builder.sign(load_key(ca.key_pem), hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.PEM)


def crl_serials(crl_pem: bytes, ca_cert_pem: bytes, where: str = "CRL") -> set[int]:
    """The serials a CRL revokes, once its signature checks against the CA's key;
    PKIError names ``where`` for anything else (not a CRL, another CA's)."""
    try:
        crl = x509.load_pem_x509_crl(crl_pem)
    except ValueError:
        raise PKIError(f"{where}: not a PEM CRL") from None
    ca_cert = load_cert(ca_cert_pem, "CA certificate")
    public = ca_cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or not crl.is_signature_valid(public):
        raise PKIError(
            f"{where}: not signed by the cluster's CA ({ca_cert.subject.rfc4514_string()})"
        )
    return {revoked.serial_number for revoked in crl}


def load_cert(pem: bytes, where: str = "certificate") -> x509.Certificate:
    """The first certificate of a PEM text; PKIError says ``where`` when there is none."""
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise PKIError(f"{where}: not a PEM certificate") from None


def load_key(pem: bytes, where: str = "key") -> ec.EllipticCurvePrivateKey:
    """An unencrypted EC private key from PEM; PKIError says ``where`` otherwise."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise PKIError(f"{where}: not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PKIError(f"{where}: not an EC private key")
    return key


def has_private_key(pem: bytes) -> bool:
    """Whether a PEM text holds a private key of any kind (what etcd and grpc take)."""
    try:
        serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        return False
    return True


def key_matches(cert_pem: bytes, key_pem: bytes) -> bool:
    """Whether ``key_pem`` is the private key of the certificate's public key."""
    cert = load_cert(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return bool(
        cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)
    )


def issued_by(cert_pem: bytes, ca_cert_pem: bytes) -> bool:
    """Whether the CA's key signed the certificate (and names it as its issuer)."""
    cert, ca = load_cert(cert_pem), load_cert(ca_cert_pem, "CA certificate")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def fingerprint(cert_pem: bytes) -> str:
    """The certificate's SHA-256 fingerprint as colon-separated upper-case hex."""
    digest = hashlib.sha256(load_cert(cert_pem).public_bytes(serialization.Encoding.DER))
    return ":".join(f"{b:02X}" for b in digest.digest())


def renewal_due(
    cert_pem: bytes, share: float = RENEW_AT, now: datetime.datetime | None = None
) -> bool:
    """Whether ``share`` of the certificate's life has passed (or it expired)."""
    load_cert(cert_pem)  # a PKIError for what is not a certificate
    return certdates.renewal_due(cert_pem, share, now or _now())


def expiry(cert_pem: bytes) -> datetime.datetime:
    """When the certificate stops being valid (UTC)."""
    return load_cert(cert_pem).not_valid_after_utc


# --- files ------------------------------------------------------------------------------


def write_pem(path: Path, data: bytes, *, private: bool) -> None:
    """Write ``data`` to ``path`` atomically: 0600 when ``private``, else 0644.

    The temporary file is made 0600 in the same directory before a byte is written,
    so a key is never readable by others, not even for a moment.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600 if private else 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_issued(directory: Path, name: str, issued: Issued) -> tuple[Path, Path]:
    """``<name>.pem`` (0644) and ``<name>-key.pem`` (0600) in ``directory``: their paths."""
    cert_path = directory / f"{name}.pem"
    key_path = directory / f"{name}-key.pem"
    write_pem(key_path, issued.key_pem, private=True)
    write_pem(cert_path, issued.cert_pem, private=False)
    return cert_path, key_path
