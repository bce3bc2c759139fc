"""The real-service fixtures start what they say and give a clean slate per test."""

from __future__ import annotations

import etcd3

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
