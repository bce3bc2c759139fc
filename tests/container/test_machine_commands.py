"""list-machines against a real etcd: fleetctl's columns, ids shortened unless --full."""

from __future__ import annotations

import json

import etcd3
from click.testing import CliRunner

from container.cli.machines import list_machines
from container.services.cluster import Cluster
from tests.container.conftest import KS, MACHINE, Invoke, announce


def test_list_machines_shortens_ids_unless_full(vulcano: Invoke, client: etcd3.Etcd3Client) -> None:
    record = {
        "id": "0123456789abcdef",
        "hostname": "h1",
        "public_ip": "10.9.0.1",
        "metadata": {"region": "eu", "disk": "ssd"},
        "version": "1",
    }
    client.put(KS.machine(record["id"]), json.dumps(record))
    r = vulcano("list-machines")
    assert r.output.split("\n")[:2] == [
        "MACHINE\tIP\tMETADATA",
        "01234567...\t10.9.0.1\tdisk=ssd,region=eu",
    ]
    r = vulcano("list-machines", "--full", "--no-legend")
    assert r.output.startswith("0123456789abcdef\t")


def test_list_machines_runs_on_its_own_with_a_cluster_given(
    cluster: Cluster, client: etcd3.Etcd3Client
) -> None:
    announce(client)
    r = CliRunner().invoke(list_machines, ["--json", "--fields", "machine,hostname"], obj=cluster)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == [{"machine": "01234567...", "hostname": MACHINE.hostname}]


def test_a_command_without_a_cluster_says_so() -> None:
    r = CliRunner().invoke(list_machines, [])
    assert r.exit_code == 2 and "no cluster: give --etcd-endpoints" in r.output
