"""Machines boot from the node user-data Vulcano generates, and their etcd members form
a cluster through the hosted installer's discovery service.

Each machine is a privileged podman container with systemd as PID 1 and cloud-init,
in a network namespace on the test's underlay; the installer listens on the underlay's
bridge address, so every packet stays inside what the test made.
"""

from __future__ import annotations

import json

import etcd3
import pytest
import requests

from tests.e2e.conftest import MachineFactory
from vulcano.lab.errors import CloudInitFailed
from vulcano.lab.installer import InstallerServer
from vulcano.lab.machines import Machine
from vulcano.lab.netns import TestHost, Underlay
from vulcano.lab.poll import wait_for
from vulcano.nodeconfig import NodeSpec, render_node

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(1200)]

# etcd answers /health within seconds of cloud-init's runcmd restarting it.
ETCD_HEALTHY_TIMEOUT = 120.0


def new_discovery_url(installer: InstallerServer, size: int) -> str:
    url = installer.new_discovery_url(size)
    assert installer.underlay_url is not None and url.startswith(installer.underlay_url), url
    return url


def etcd_health(machine: Machine) -> bool:
    done = machine.exec(["curl", "-fsS", "--max-time", "3", "http://127.0.0.1:2379/health"])
    return bool(json.loads(done.stdout).get("health") == "true")


def wait_booted(machine: Machine) -> None:
    """cloud-init done; when it is not, the failure shows etcd's journal too."""
    try:
        machine.wait_cloud_init()
    except CloudInitFailed as exc:
        raise AssertionError(f"{exc}\n--- etcd ---\n{machine.journal('etcd.service')}") from None


def wait_etcd_healthy(machine: Machine) -> None:
    try:
        wait_for(lambda: etcd_health(machine), ETCD_HEALTHY_TIMEOUT, f"etcd on {machine}", 0.5)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{machine.journal('etcd.service')}") from None


def member_names(host: TestHost) -> list[str]:
    """The members a node's etcd knows, asked on the node's underlay address."""
    with host.forward(2379) as forward:
        client = etcd3.client(host="127.0.0.1", port=forward.port, timeout=10)
        try:
            return sorted(member.name for member in client.members)
        finally:
            client.close()


def registered(installer: InstallerServer, discovery_url: str) -> list[str]:
    """The `name=peer-url` values a discovery token holds (etcd's v2 protocol)."""
    assert installer.underlay_url is not None
    on_loopback = installer.url + discovery_url.removeprefix(installer.underlay_url)
    answer = requests.get(on_loopback, timeout=10)
    assert answer.status_code == 200, answer.text
    nodes = answer.json()["node"].get("nodes", [])
    return sorted(n["value"] for n in nodes if not n["key"].endswith("/_config"))


def test_a_node_boots_from_its_user_data_and_runs_etcd_joined_through_discovery(
    underlay: Underlay, installer: InstallerServer, machines: MachineFactory
) -> None:
    host = underlay.add_host()
    url = new_discovery_url(installer, 1)
    document = render_node(NodeSpec(name="node-0", ip=host.ip, discovery_url=url))
    machine = machines(host, document.text)

    wait_booted(machine)
    wait_etcd_healthy(machine)

    assert machine.exec(["hostname"]).stdout.strip() == "node-0"
    assert machine.systemctl("is-active", "etcd.service").stdout.strip() == "active"
    assert machine.read_file("/var/lib/cloud/instance/user-data.txt") == document.text
    assert member_names(host) == ["node-0"]
    assert registered(installer, url) == [f"node-0=http://{host.ip}:2380"]


def test_three_nodes_form_one_etcd_cluster_through_discovery(
    underlay: Underlay, installer: InstallerServer, machines: MachineFactory
) -> None:
    hosts = underlay.add_hosts(3)
    url = new_discovery_url(installer, 3)
    booted = []
    for i, host in enumerate(hosts):
        document = render_node(NodeSpec(name=f"node-{i}", ip=host.ip, discovery_url=url))
        booted.append(machines(host, document.text))

    for machine in booted:
        wait_booted(machine)
    for machine in booted:
        wait_etcd_healthy(machine)

    names = ["node-0", "node-1", "node-2"]
    for host in hosts:  # every member sees the same three
        assert member_names(host) == names
    assert registered(installer, url) == sorted(
        f"node-{i}=http://{host.ip}:2380" for i, host in enumerate(hosts)
    )
