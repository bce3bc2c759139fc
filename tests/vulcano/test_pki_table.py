"""The cluster CA library, pure: what each kind of certificate carries, validity, SANs,
fingerprints, and the PEM files it writes (keys 0600, atomically)."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from vulcano import pki

SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH


@pytest.fixture(scope="module")
def ca() -> pki.Issued:
    return pki.new_ca("test-cluster")


def test_ca_is_a_p256_ca_that_signs_leaves_only(ca: pki.Issued) -> None:
    cert = ca.cert
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    assert cert.issuer == cert.subject


@pytest.mark.parametrize(
    ("kind", "ekus"),
    [("server", {SERVER, CLIENT}), ("peer", {SERVER, CLIENT}), ("client", {CLIENT})],
)
def test_each_kind_carries_the_extended_key_usages_etcd_checks(
    ca: pki.Issued, kind: pki.Kind, ekus: set[x509.ObjectIdentifier]
) -> None:
    cert = pki.issue(ca, f"node-{kind}", kind, ips=["10.0.0.5"], dns=["node1"]).cert
    assert set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == ekus
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.issuer == ca.cert.subject
    ca.cert.verify_directly_issued_by(ca.cert)
    cert.verify_directly_issued_by(ca.cert)


def test_sans_hold_the_ips_and_dns_names_given(ca: pki.Issued) -> None:
    cert = pki.issue(
        ca, "m1", "server", ips=["10.0.0.5", "127.0.0.1", "fd00::1"], dns=["m1.example"]
    ).cert
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.5"),
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("fd00::1"),
    ]
    assert sans.get_values_for_type(x509.DNSName) == ["m1.example"]


def test_the_key_issued_is_the_certificates_own(ca: pki.Issued) -> None:
    issued = pki.issue(ca, "c", "client")
    assert pki.key_matches(issued.cert_pem, issued.key_pem)
    assert not pki.key_matches(issued.cert_pem, pki.issue(ca, "d", "client").key_pem)


def test_validity_follows_not_before_and_valid_for(ca: pki.Issued) -> None:
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    issued = pki.issue(ca, "old", "client", not_before=start, valid_for=datetime.timedelta(days=1))
    assert issued.cert.not_valid_before_utc == start
    assert pki.expiry(issued.cert_pem) == start + datetime.timedelta(days=1)


def test_by_default_valid_from_a_little_before_now(ca: pki.Issued) -> None:
    now = datetime.datetime.now(datetime.UTC)
    cert = pki.issue(ca, "c", "client").cert
    assert now - pki.CLOCK_SKEW - datetime.timedelta(minutes=1) <= cert.not_valid_before_utc
    assert cert.not_valid_before_utc <= now
    assert pki.expiry(cert.public_bytes(serialization.Encoding.PEM)) > now


def test_a_leaf_never_outlives_its_ca() -> None:
    short = pki.new_ca("short", valid_for=datetime.timedelta(days=2))
    leaf = pki.issue(short, "c", "client", valid_for=datetime.timedelta(days=365))
    assert pki.expiry(leaf.cert_pem) == pki.expiry(short.cert_pem)


def test_fingerprint_is_sha256_of_the_der_certificate(ca: pki.Issued) -> None:
    der = ca.cert.public_bytes(serialization.Encoding.DER)
    expected = hashlib.sha256(der).hexdigest().upper()
    assert pki.fingerprint(ca.cert_pem).replace(":", "") == expected
    assert len(pki.fingerprint(ca.cert_pem).split(":")) == 32


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "server"}, "needs an IP or DNS name"),
        ({"kind": "peer"}, "needs an IP or DNS name"),
        ({"kind": "admin"}, "kind 'admin'"),
        ({"kind": "client", "ips": ["10.0.0.300"]}, "'10.0.0.300' is not an IP address"),
        ({"kind": "client", "dns": ["bad name"]}, "'bad name' is not a DNS name"),
        ({"kind": "client", "dns": ["a..b"]}, "'a..b' is not a DNS name"),
        ({"kind": "client", "valid_for": datetime.timedelta(0)}, "must be positive"),
        (
            {"kind": "client", "not_before": datetime.datetime(2020, 1, 1)},
            "time zone",
        ),
        ({"kind": "client", "common_name": ""}, "common name"),
        ({"kind": "client", "common_name": "a\nb"}, "common name"),
    ],
)
def test_bad_requests_say_which_part(
    ca: pki.Issued, kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"common_name": "x", **kwargs}
    with pytest.raises(pki.PKIError, match=message):
        pki.issue(ca, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pem", "reader", "message"),
    [
        (b"", pki.load_cert, "not a PEM certificate"),
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            pki.load_cert,
            "not a PEM",
        ),
        (b"hello", pki.load_key, "not an unencrypted PEM private key"),
    ],
)
def test_bad_pem_is_refused(pem: bytes, reader: object, message: str) -> None:
    with pytest.raises(pki.PKIError, match=message):
        reader(pem)  # type: ignore[operator]


def test_files_keys_0600_certs_0644_no_temporary_left(tmp_path: Path, ca: pki.Issued) -> None:
    issued = pki.issue(ca, "c", "client")
    cert_path, key_path = pki.write_issued(tmp_path, "client", issued)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert_path.stat().st_mode) == 0o644
    assert key_path.read_bytes() == issued.key_pem
    assert cert_path.read_bytes() == issued.cert_pem
    assert sorted(p.name for p in tmp_path.iterdir()) == ["client-key.pem", "client.pem"]


def test_rewriting_replaces_the_file_whole(tmp_path: Path, ca: pki.Issued) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(b"old and longer than the new contents" * 100)
    path.chmod(0o644)
    new = pki.issue(ca, "c", "client").key_pem
    pki.write_pem(path, new, private=True)
    assert path.read_bytes() == new
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "key.pem"
    with pytest.raises(FileNotFoundError):
        pki.write_pem(target, b"x", private=True)
    assert list(tmp_path.iterdir()) == []
