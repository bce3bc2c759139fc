"""A cluster's overlay config: kept in the database until its etcd answers, then written
there once (real etcd), and never over another config."""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import etcd3
import pytest
import requests
import yaml

from container.services import clusternetwork, clusters, nodes
from container.store import Store
from tests.conftest import require
from tests.container.clusters.conftest import Invoke, rows
from vulcano import nodeconfig
from vulcano.keyspace import Keyspace
from vulcano.lab.poll import wait_for
from vulcano.lab.ports import reserve_port
from vulcano.lab.services import Etcd, stop_process

KEY = Keyspace().network_config


@pytest.fixture
def etcd_client(etcd: Etcd) -> Iterator[etcd3.Etcd3Client]:
    host, port = etcd.host_port
    client = etcd3.client(host=host, port=port, timeout=5)
    yield client
    client.close()


def test_the_network_waits_in_the_store_then_reaches_etcd(
    vulcano: Invoke, store: Store, state_dir: Path, etcd: Etcd, etcd_client: etcd3.Etcd3Client
) -> None:
    assert (
        vulcano(
            "cluster", "create", "prod", "--size", "3", "--network", "10.60.0.0/16", "--no-tls"
        ).exit_code
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


def test_commands_reach_a_cluster_by_name_at_its_recorded_endpoints(
    vulcano: Invoke, etcd: Etcd, etcd_client: etcd3.Etcd3Client
) -> None:
    assert vulcano("cluster", "create", "prod", "--size", "1", "--no-tls").exit_code == 0
    unknown = vulcano("--cluster", "prod", "list-machines")
    assert unknown.exit_code == 1
    assert "cluster 'prod' has no etcd endpoints yet" in unknown.output
    assert vulcano("cluster", "endpoints", "prod", etcd.endpoint).exit_code == 0
    etcd_client.put(
        Keyspace().machine("a" * 32), json.dumps({"id": "a" * 32, "public_ip": "10.1.2.3"})
    )
    # --endpoint names nothing that answers: the cluster's recorded endpoints are used
    listed = vulcano("--endpoint", "http://127.0.0.1:9", "--cluster", "prod", "list-machines")
    assert listed.exit_code == 0, listed.output
    assert "aaaaaaaa...\t10.1.2.3" in listed.output


def test_another_config_in_etcd_is_left_alone(
    vulcano: Invoke, etcd: Etcd, etcd_client: etcd3.Etcd3Client
) -> None:
    theirs = '{"network": "10.99.0.0/16"}'
    etcd_client.put(KEY, theirs)
    assert vulcano("cluster", "create", "prod", "--size", "1", "--no-tls").exit_code == 0
    result = vulcano("cluster", "endpoints", "prod", etcd.endpoint)
    assert result.exit_code == 1
    assert "etcd holds another network config" in result.output
    value, _ = etcd_client.get(KEY)
    assert value.decode() == theirs


def test_an_etcd_that_does_not_answer_is_named(vulcano: Invoke, state_dir: Path) -> None:
    assert vulcano("cluster", "create", "prod", "--size", "1", "--no-tls").exit_code == 0
    url = f"http://127.0.0.1:{reserve_port()}"
    result = vulcano("cluster", "endpoints", "prod", url)
    assert result.exit_code == 1
    assert f"127.0.0.1:{url.rsplit(':', 1)[1]}" in result.output
    assert rows(state_dir)[0]["network_written_at"] == 0


@pytest.fixture
def node_address() -> str:
    """A loopback address of its own, so the node's etcd can use the real ports 2379/2380."""
    address = f"127.77.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}"
    for port in (2379, 2380):
        with socket.socket() as probe:
            require(probe.connect_ex((address, port)) != 0, f"{address}:{port} is taken")
    return address


def test_the_endpoints_are_learned_from_a_real_member_that_joined_through_discovery(
    vulcano: Invoke, store: Store, state_dir: Path, tmp_path: Path, node_address: str
) -> None:
    """etcd started from the very configuration the node's user-data carries registers
    with the installer's discovery; the container learns its client URL from there and
    writes the network config into it."""
    require(shutil.which("etcd") is not None, "needs Debian's etcd-server")
    created = vulcano("cluster", "create", "lab", "--size", "2", "--ip", node_address, "--no-tls")
    assert created.exit_code == 0, created.output
    waiting = vulcano("cluster", "endpoints", "lab")
    assert waiting.exit_code == 0 and "no member has come up yet" in waiting.output

    document = nodes.user_data(store, "lab", 1)
    config = yaml.safe_load(nodeconfig.written_file(document.data, nodeconfig.ETCD_CONFIG_PATH))
    config["data-dir"] = str(tmp_path / "member")
    path = tmp_path / "etcd.conf.yml"
    path.write_text(yaml.safe_dump(config))
    log = (tmp_path / "etcd.log").open("wb")
    member = subprocess.Popen(
        ["etcd", "--config-file", str(path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        endpoint = f"http://{node_address}:2379"
        wait_for(
            lambda: requests.get(f"{endpoint}/health", timeout=2).ok,
            60,
            f"the node's etcd on {endpoint} (log: {tmp_path / 'etcd.log'})",
        )
        result = vulcano("cluster", "endpoints", "lab")
        assert result.exit_code == 0, result.output
        assert f"endpoints {endpoint}; network config written" in result.output
        client = etcd3.client(host=node_address, port=2379, timeout=5)
        try:
            value, _ = client.get(KEY)
        finally:
            client.close()
        assert json.loads(value) == json.loads(rows(state_dir)[0]["network_config"])
        # the container reaches the cluster from now on
        assert clusters.connect(store, "lab").endpoints == endpoint
        # and node 2, past the one member, is an agent-only node that uses it
        agent_only = nodes.user_data(store, "lab", 2)
        agent = nodeconfig.written_file(agent_only.data, nodeconfig.AGENT_CONFIG_PATH)
        assert f'etcd-endpoints = "{endpoint}"' in agent
    finally:
        stop_process(member)
        log.close()
