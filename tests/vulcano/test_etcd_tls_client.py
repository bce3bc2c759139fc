"""The etcd clients over mutual TLS, against the real etcd 3.4 requiring client
certificates: the cluster's own certificate is admitted; none, another CA's, an expired
one, or a server checked against the wrong CA are refused at once, saying so; and what
`tls_files` refuses before any connection (each error names the flag). Every test that
connects runs on both clients: python-etcd3's over gRPC and the agent's over the JSON
gateway (`vulcano.etcdhttp`)."""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Any

import pytest

from vulcano import etcd as vulcano_etcd
from vulcano import etcdhttp, pki, policy
from vulcano.etcd import EndpointError, EtcdRefused, TLSFileError, TLSFiles, tls_files
from vulcano.lab import services

NO_CERT = "etcd requires a client certificate and none was given (--cert, --key)"
OTHER_CA = "not by the CA this cluster trusts"
EXPIRED = "expired at"
SERVER_UNVERIFIED = "etcd's server certificate does not verify against --cacert"


CLIENTS = {"grpc": vulcano_etcd.connect, "http": etcdhttp.connect}


@pytest.fixture(params=sorted(CLIENTS))
def connect(request: pytest.FixtureRequest) -> Any:
    """Each client's ``connect``: python-etcd3's (gRPC) and the JSON gateway's."""
    return CLIENTS[request.param]


def refused(connect: Any, endpoint: str, tls: TLSFiles) -> tuple[str, float]:
    client = connect(endpoint, tls=tls)
    started = time.monotonic()
    try:
        with pytest.raises(EtcdRefused) as caught:
            client.get("/x")
    finally:
        client.close()
    return str(caught.value), time.monotonic() - started


def test_the_clusters_own_client_certificate_is_admitted(
    etcd_tls: services.Etcd, connect: Any
) -> None:
    assert etcd_tls.endpoint.startswith("https://")
    assert etcd_tls.tls is not None
    client = connect(etcd_tls.endpoint, tls=etcd_tls.tls.client_files())
    try:
        client.put("/vulcano/tls-probe", "yes")
        assert client.get("/vulcano/tls-probe")[0] == b"yes"
    finally:
        client.close()


def _expired(tls: services.EtcdTLS, tmp_path: Path) -> TLSFiles:
    issued = pki.issue(
        tls.ca,
        "expired",
        "client",
        not_before=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=2),
        valid_for=datetime.timedelta(days=1),
    )
    cert, key = pki.write_issued(tmp_path, "expired", issued)
    return TLSFiles(tls.cacert, cert, key)


def _other_ca(tls: services.EtcdTLS, tmp_path: Path) -> TLSFiles:
    other = services.EtcdTLS.make(tmp_path / "other-cluster", "another-cluster-ca")
    return TLSFiles(tls.cacert, other.client_cert, other.client_key)


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("no client certificate", NO_CERT),
        ("another cluster's CA", OTHER_CA),
        ("expired", EXPIRED),
        ("server checked against another CA", SERVER_UNVERIFIED),
    ],
)
def test_a_client_the_cluster_did_not_issue_is_refused_saying_so(
    etcd_tls: services.Etcd, tmp_path: Path, case: str, says: str, connect: Any
) -> None:
    tls = etcd_tls.tls
    assert tls is not None
    files = {
        "no client certificate": lambda: TLSFiles(tls.cacert),
        "another cluster's CA": lambda: _other_ca(tls, tmp_path),
        "expired": lambda: _expired(tls, tmp_path),
        "server checked against another CA": lambda: TLSFiles(
            services.EtcdTLS.make(tmp_path / "wrong-ca").cacert, tls.client_cert, tls.client_key
        ),
    }[case]()
    message, took = refused(connect, etcd_tls.endpoint, files)
    assert says in message, message
    assert etcd_tls.endpoint in message
    # a refusal is not waited out like an absent member: bounded by the failover window
    assert took < policy.ETCD_FAILOVER_SECONDS, message


def test_the_server_name_is_checked_even_when_dialled_by_another_name(
    etcd_tls: services.Etcd, connect: Any
) -> None:
    """As through a tunnel: dialled at one name, checked against the member's own."""
    tls = etcd_tls.tls
    assert tls is not None
    by_name = etcd_tls.endpoint.replace("127.0.0.1", "localhost")
    client = connect(by_name, tls=tls.client_files(), server_names=["127.0.0.1"])
    try:
        assert client.get("/absent")[0] is None
    finally:
        client.close()
    client = connect(
        etcd_tls.endpoint, tls=tls.client_files(), server_names=["etcd.elsewhere.example"]
    )
    try:
        with pytest.raises(EtcdRefused, match="server certificate does not verify"):
            client.get("/absent")
    finally:
        client.close()


# --- refused before connecting ------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tls-files")
    ca = pki.new_ca("files-ca")
    pki.write_pem(d / "ca.pem", ca.cert_pem, private=False)
    cert, key = pki.write_issued(d, "client", pki.issue(ca, "c", "client"))
    _, other_key = pki.write_issued(d, "other", pki.issue(ca, "o", "client"))
    (d / "garbage.pem").write_text("not a certificate\n")
    return {
        "ca": d / "ca.pem",
        "cert": cert,
        "key": key,
        "other_key": other_key,
        "garbage": d / "garbage.pem",
        "missing": d / "missing.pem",
        "dir": d,
    }


HTTPS = "https://10.0.0.1:2379,https://10.0.0.2:2379"


def test_the_files_read_make_tls_files(files: dict[str, Path]) -> None:
    got = tls_files(HTTPS, files["ca"], files["cert"], files["key"])
    assert got == TLSFiles(files["ca"], files["cert"], files["key"])
    assert tls_files(HTTPS, files["ca"], None, None) == TLSFiles(files["ca"])
    assert tls_files("http://10.0.0.1:2379", None, None, None) is None


@pytest.mark.parametrize(
    ("endpoints", "cacert", "cert", "key", "says"),
    [
        (HTTPS, None, None, None, "https:// etcd endpoints need --cacert"),
        (HTTPS, None, "cert", "key", "https:// etcd endpoints need --cacert"),
        (HTTPS, "ca", "cert", None, "--cert given without --key"),
        (HTTPS, "ca", None, "key", "--key given without --cert"),
        (HTTPS, "missing", None, None, "--cacert {missing}: No such file or directory"),
        (HTTPS, "dir", None, None, "--cacert {dir}: Is a directory"),
        (HTTPS, "ca", "missing", "key", "--cert {missing}: No such file"),
        (HTTPS, "ca", "cert", "missing", "--key {missing}: No such file"),
        (HTTPS, "garbage", None, None, "--cacert {garbage}: not a PEM certificate"),
        (HTTPS, "ca", "garbage", "key", "--cert {garbage}: not a PEM certificate"),
        (HTTPS, "ca", "cert", "garbage", "--key {garbage}: not an unencrypted PEM private key"),
        (HTTPS, "ca", "cert", "other_key", "not the key of the certificate in --cert"),
        (
            "http://10.0.0.1:2379",
            "ca",
            None,
            None,
            "--cacert given but the etcd endpoints are http",
        ),
        ("http://10.0.0.1:2379", None, "cert", "key", "--cert given but"),
    ],
)
def test_bad_tls_files_are_refused_naming_the_flag(
    files: dict[str, Path],
    endpoints: str,
    cacert: str | None,
    cert: str | None,
    key: str | None,
    says: str,
) -> None:
    def path(name: str | None) -> Path | None:
        return files[name] if name else None

    with pytest.raises(TLSFileError) as caught:
        tls_files(endpoints, path(cacert), path(cert), path(key))
    assert says.format(**{k: str(v) for k, v in files.items()}) in str(caught.value)


def test_labels_name_where_a_value_came_from(files: dict[str, Path]) -> None:
    with pytest.raises(TLSFileError, match="VULCANO_CACERT "):
        tls_files(HTTPS, files["missing"], None, None, labels=("VULCANO_CACERT", "c", "k"))


@pytest.mark.parametrize(
    "endpoints",
    [
        "http://10.0.0.1:2379,https://10.0.0.2:2379",
        "https://10.0.0.1:2379,10.0.0.2:2379",  # no scheme is http://
    ],
)
def test_mixed_schemes_are_refused(endpoints: str) -> None:
    with pytest.raises(EndpointError, match="mix http:// and https://"):
        vulcano_etcd.parse_endpoints(endpoints)


def test_https_endpoints_parse_and_need_tls_to_connect() -> None:
    assert vulcano_etcd.parse_urls("https://10.0.0.1:2379,https://m2:2380") == [
        ("https", "10.0.0.1", 2379),
        ("https", "m2", 2380),
    ]
    with pytest.raises(TLSFileError, match="need --cacert"):
        vulcano_etcd.connect("https://10.0.0.1:2379")


def test_tls_to_a_plain_member_is_refused_at_once_saying_so(
    etcd: services.Etcd, etcd_tls: services.Etcd, connect: Any
) -> None:
    assert etcd_tls.tls is not None
    message, took = refused(
        connect, etcd.endpoint.replace("http://", "https://"), etcd_tls.tls.client_files()
    )
    assert "the member did not answer in TLS at this address (is its endpoint http://?)" in message
    assert took < policy.ETCD_FAILOVER_SECONDS


def test_plain_requests_to_a_tls_member_are_told_to_use_https(
    etcd_tls: services.Etcd, connect: Any
) -> None:
    client = connect(etcd_tls.endpoint.replace("https://", "http://"))
    try:
        with pytest.raises(vulcano_etcd.EtcdUnavailable) as caught:
            client.get("/x")
    finally:
        client.close()
    assert "give https:// and --cacert" in str(caught.value)
