"""The real-service fixtures start what they say and give a clean slate per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import etcd3
import pytest
import requests

from tests.conftest import require
from vulcano.lab import services
from vulcano.lab.services import Etcd


def test_etcd_fixture_is_empty_and_writable(etcd: Etcd) -> None:
    host, port = etcd.host_port
    client = etcd3.client(host=host, port=port, timeout=5)
    try:
        assert list(client.get_prefix("/")) == []
        client.put("/probe", "1")
        value, _ = client.get("/probe")
        assert value == b"1"
    finally:
        client.close()


def test_etcd_fixture_cleans_between_tests(etcd: Etcd) -> None:
    host, port = etcd.host_port
    client = etcd3.client(host=host, port=port, timeout=5)
    try:
        value, _ = client.get("/probe")
        assert value is None
    finally:
        client.close()


def test_a_tls_cluster_requires_peer_and_client_certificates_and_moves_its_leader(
    tmp_path: Path,
) -> None:
    """The lab's TLS mode: https:// URLs, peers on TLS, and etcdctl given the client files."""
    require(shutil.which("etcdctl") is not None, "needs Debian's etcd-client")
    with services.etcd_cluster(tmp_path, tls=True) as members:
        assert all(m.endpoint.startswith("https://") for m in members.members)
        assert all(m.peer_url.startswith("https://") for m in members.members)
        assert members.tls is not None
        # without a client certificate etcd's HTTP gateway refuses as its gRPC does
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(
                f"{members.members[0].endpoint}/health", timeout=2, verify=str(members.tls.cacert)
            )
        leader = members.leader()
        other = next(m for m in members.members if m is not leader)
        members.move_leader(other)
        assert members.leader() is other
