"""A cluster's overlay config: kept in the database until its etcd answers, then written
there once (real etcd), and never over another config."""

from __future__ import annotations

import json
from pathlib import Path

import etcd3
import pytest

from container.services import clusternetwork
from container.store import Store
from tests.container.clusters.conftest import Invoke, rows
from vulcano.keyspace import Keyspace
from vulcano.lab.ports import reserve_port
from vulcano.lab.services import Etcd

KEY = Keyspace().network_config


@pytest.fixture
def etcd_client(etcd: Etcd) -> etcd3.Etcd3Client:
    host, port = etcd.host_port
    client = etcd3.client(host=host, port=port, timeout=5)
    yield client
    client.close()


def test_the_network_waits_in_the_store_then_reaches_etcd(
    vulcano: Invoke, store: Store, state_dir: Path, etcd: Etcd, etcd_client: etcd3.Etcd3Client
) -> None:
    assert (
        vulcano("cluster", "create", "prod", "--size", "3", "--network", "10.60.0.0/16").exit_code
        == 0
    )
    assert clusternetwork.write_network(store, "prod") == clusternetwork.PENDING
    [row] = rows(state_dir)
    assert json.loads(row["network_config"])["network"] == "10.60.0.0/16"
    assert row["network_written_at"] == 0

    result = vulcano("cluster", "endpoints", "prod", etcd.endpoint)
    assert result.exit_code == 0, result.output
    assert "network config written" in result.output
    value, _ = etcd_client.get(KEY)
    assert json.loads(value) == json.loads(row["network_config"])
    assert rows(state_dir)[0]["network_written_at"] > 0
    again = vulcano("cluster", "endpoints", "prod", etcd.endpoint)
    assert "network config unchanged" in again.output


def test_another_config_in_etcd_is_left_alone(
    vulcano: Invoke, etcd: Etcd, etcd_client: etcd3.Etcd3Client
) -> None:
    theirs = '{"network": "10.99.0.0/16"}'
    etcd_client.put(KEY, theirs)
    assert vulcano("cluster", "create", "prod", "--size", "1").exit_code == 0
    result = vulcano("cluster", "endpoints", "prod", etcd.endpoint)
    assert result.exit_code == 1
    assert "etcd holds another network config" in result.output
    value, _ = etcd_client.get(KEY)
    assert value.decode() == theirs


def test_an_etcd_that_does_not_answer_is_named(vulcano: Invoke, state_dir: Path) -> None:
    assert vulcano("cluster", "create", "prod", "--size", "1").exit_code == 0
    url = f"http://127.0.0.1:{reserve_port()}"
    result = vulcano("cluster", "endpoints", "prod", url)
    assert result.exit_code == 1
    assert f"127.0.0.1:{url.rsplit(':', 1)[1]}" in result.output
    assert rows(state_dir)[0]["network_written_at"] == 0
