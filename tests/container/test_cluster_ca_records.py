"""The cluster CA the container keeps (`container.services.clusterca`), on a real SQLite
store and files, no etcd: node certificates name the node's address and loopback and
are recorded; revocation revokes every certificate a node was issued, in a CRL its CA
signed; a renewal is signed for the CSR's key with the names the container knows, and
refused for a node never issued to, a revoked one, or a request that is not a CSR; a
CSR's own names are ignored; forgetting a cluster removes its CA and records."""

from __future__ import annotations

import datetime
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from container.services import clusterca, clusters, enrolment
from container.services.clusterca import CertificateError
from container.services.errors import ClusterInputError
from container.store import Store, open_store
from vulcano import pki


@pytest.fixture
def store(tmp_path: Path) -> Store:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    s = open_store(state)
    clusterca.create(s, "c")
    return s


def csr(name: str, key_pem: bytes, ips: tuple[str, ...] = ()) -> bytes:
    key = pki.load_key(key_pem)
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    )
    if ips:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(i)) for i in ips]),
            critical=False,
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def sans(cert_pem: bytes) -> tuple[list[str], list[str]]:
    ext = pki.load_cert(cert_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    ips = [str(i) for i in ext.value.get_values_for_type(x509.IPAddress)]
    return ips, ext.value.get_values_for_type(x509.DNSName)


def test_a_nodes_certificate_names_its_address_and_loopback_and_is_recorded(
    store: Store,
) -> None:
    tls = clusterca.issue_node(store, "c", "c-1", "10.0.0.5")
    cert = tls.cert_pem.encode()
    assert pki.issued_by(cert, tls.ca_pem.encode())
    assert pki.key_matches(cert, tls.key_pem.encode())
    assert sans(cert) == (["10.0.0.5", "127.0.0.1"], ["c-1", "localhost"])
    assert pki.crl_serials(tls.crl_pem.encode(), tls.ca_pem.encode()) == set()
    with store.read() as conn:
        rows = conn.execute("SELECT subject, kind, serial FROM certificates").fetchall()
    recorded = {(r["subject"], r["kind"]) for r in rows}
    assert recorded == {(clusterca.CONTAINER_SUBJECT, "client"), ("c-1", "peer")}
    assert f"{pki.load_cert(cert).serial_number:x}" in {r["serial"] for r in rows}


def test_a_node_whose_address_is_found_at_boot_gets_a_client_certificate(store: Store) -> None:
    tls = clusterca.issue_node(store, "c", "c-4", None)
    cert = pki.load_cert(tls.cert_pem.encode())
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_every_file_is_0600_in_a_0700_directory(store: Store) -> None:
    directory = clusterca.directory_of(store, "c")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    names = sorted(p.name for p in directory.iterdir())
    assert names == ["ca-key.pem", "ca.pem", "container-key.pem", "container.pem", "crl.pem"]
    assert {stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()} == {0o600}


def test_revoking_a_node_revokes_all_it_was_issued_in_a_crl_of_its_ca(store: Store) -> None:
    first = clusterca.issue_node(store, "c", "c-2", "10.0.0.6")
    second = clusterca.issue_node(store, "c", "c-2", "10.0.0.6")
    kept = clusterca.issue_node(store, "c", "c-1", "10.0.0.5")
    serials, crl = clusterca.revoke(store, "c", "c-2")
    serial = [pki.load_cert(t.cert_pem.encode()).serial_number for t in (first, second, kept)]
    assert sorted(serials) == sorted(serial[:2])
    authority = clusterca.load(store, "c")
    assert pki.crl_serials(crl, authority.ca.cert_pem) == set(serial[:2])
    assert authority.crl() == crl  # what the next node's user-data carries
    again, crl_again = clusterca.revoke(store, "c", "c-2")
    assert again == [] and pki.crl_serials(crl_again, authority.ca.cert_pem) == set(serial[:2])
    with pytest.raises(CertificateError, match="container's own"):
        clusterca.revoke(store, "c", clusterca.CONTAINER_SUBJECT)


def test_a_renewal_is_for_the_csrs_key_with_the_names_the_container_knows(
    store: Store,
) -> None:
    clusterca.issue_node(store, "c", "c-1", "10.0.0.5")
    key = pki.new_key_pem()
    # the request asks for another name and address: neither is granted
    request = csr("c-9", key, ips=("203.0.113.9",))
    cert = clusterca.sign_renewal(store, "c", "c-1", "10.0.0.5", request)
    assert pki.key_matches(cert, key)
    assert pki.issued_by(cert, clusterca.load(store, "c").ca.cert_pem)
    assert pki.load_cert(cert).subject.rfc4514_string() == "CN=c-1"
    assert sans(cert) == (["10.0.0.5", "127.0.0.1"], ["c-1", "localhost"])
    assert not pki.renewal_due(cert)


@pytest.mark.parametrize(
    ("node", "request_text", "message"),
    [
        ("c-7", None, "no certificate was issued to it"),
        ("c-2", None, "its certificates were revoked"),
        ("c-1", b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", "not a PEM CSR"),
    ],
)
def test_a_renewal_is_refused(
    store: Store, node: str, request_text: bytes | None, message: str
) -> None:
    clusterca.issue_node(store, "c", "c-1", "10.0.0.5")
    clusterca.issue_node(store, "c", "c-2", "10.0.0.6")
    clusterca.revoke(store, "c", "c-2")
    with store.read() as conn:
        before = conn.execute("SELECT COUNT(*) FROM certificates").fetchone()[0]
    with pytest.raises(CertificateError, match=message):
        clusterca.sign_renewal(
            store, "c", node, "10.0.0.5", request_text or csr(node, pki.new_key_pem())
        )
    with store.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM certificates").fetchone()[0] == before


def test_renewal_is_due_at_two_thirds_of_a_certificates_life() -> None:
    ca = pki.new_ca("t")
    start = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    cert = pki.issue(
        ca, "n", "client", not_before=start, valid_for=datetime.timedelta(days=90)
    ).cert_pem
    assert not pki.renewal_due(cert, now=start + datetime.timedelta(days=59))
    assert pki.renewal_due(cert, now=start + datetime.timedelta(days=60))
    assert pki.renewal_due(cert, now=start + datetime.timedelta(days=91))


def test_forget_removes_the_ca_and_its_records(store: Store) -> None:
    clusterca.issue_node(store, "c", "c-1", "10.0.0.5")
    clusterca.forget(store, "c")
    assert not clusterca.directory_of(store, "c").exists()
    with store.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM certificates").fetchone()[0] == 0
    with pytest.raises(LookupError, match="has no CA"):
        clusterca.load(store, "c")


def test_a_tls_cluster_without_its_members_addresses_needs_a_panel_to_enrol_with(
    tmp_path: Path,
) -> None:
    # the fields themselves are fine either way: members may find their address at boot
    clusters.check_fields("c", 3, "cloud-init", "10.244.0.0/16", ("10.0.0.1",), tls=True)
    with pytest.raises(ClusterInputError, match="no panel serving HTTPS") as refused:
        enrolment.check_ready(tmp_path, True, 3, ("10.0.0.1",))
    assert refused.value.field == "--ip" and "--no-tls" in refused.value.message
    enrolment.check_ready(tmp_path, False, 3, ())  # an open cluster needs none
    enrolment.check_ready(tmp_path, True, 3, ("10.0.0.1", "10.0.0.2", "10.0.0.3"))
    enrolment.record_panel(tmp_path, enrolment.PanelEndpoint("https://192.0.2.9:8443", "A" * 44))
    enrolment.check_ready(tmp_path, True, 3, ())
    assert oct((tmp_path / enrolment.ENDPOINT_FILE).stat().st_mode & 0o777) == "0o600"
