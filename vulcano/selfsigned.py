"""Certificates no CA vouches for: the panel's own HTTPS certificate, made on its first
start, and what clients pin it by (its SHA-256 fingerprint is ``vulcano.pki.fingerprint``).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
from collections.abc import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from vulcano.pki import (
    CERT_VALIDITY,
    Issued,
    PKIError,
    _key_pem,
    _name,
    _validity,
    leaf_builder,
    load_cert,
    subject_alt_names,
)


def self_signed_server(
    common_name: str,
    *,
    ips: Iterable[str] = (),
    dns: Iterable[str] = (),
    valid_for: datetime.timedelta = CERT_VALIDITY,
    not_before: datetime.datetime | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> Issued:
    """A self-signed TLS server certificate (no CA vouches for it: clients pin it).

    Not a CA (it signs nothing); at least one SAN, which browsers check the host against.
    For ``key`` (a certificate renewed for the key clients pin), else a new P-256 key.
    """
    sans = subject_alt_names(ips, dns)
    if not sans:
        raise PKIError("a server certificate needs an IP or DNS name to be checked against")
    start, end = _validity(not_before, valid_for)
    key = key if key is not None else ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    public = key.public_key()
    cert = (
        leaf_builder(name, name, public, start, end, [ExtendedKeyUsageOID.SERVER_AUTH])
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


# --- reading ----------------------------------------------------------------------------


def spki_pin(cert_pem: bytes) -> str:
    """Base64 SHA-256 of the certificate's public key (SPKI): what key pins are written as."""
    spki = (
        load_cert(cert_pem)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def san_names(cert_pem: bytes) -> set[str]:
    """The certificate's SANs, IP addresses and DNS names as text (empty without any)."""
    try:
        ext = load_cert(cert_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return set()
    ips = {str(ip) for ip in ext.value.get_values_for_type(x509.IPAddress)}
    return ips | set(ext.value.get_values_for_type(x509.DNSName))
