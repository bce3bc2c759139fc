"""The overlay between real hosts (network namespaces), with real agents and real packets."""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from typing import Any

import pytest

from tests.agent.test_membership import outlives_its_ttl
from vulcano.lab.netns import TestHost, Underlay, mesh_ok, wait_mesh
from vulcano.lab.poll import wait_for

pytestmark = pytest.mark.root


def test_every_sandbox_reaches_every_other_over_icmp_and_tcp(mesh3: Underlay) -> None:
    results = wait_mesh(mesh3.hosts, "a", timeout=20)
    assert mesh_ok(results), json.dumps(results, indent=1)
    assert sum(len(r) for r in results.values()) == 6


def test_data_path_is_flannels_vxlan(mesh3: Underlay) -> None:
    host = mesh3.hosts[0]
    link = json.loads(host.exec(["ip", "-d", "-j", "link", "show", "vulcano.vxlan"]).stdout)[0]
    underlay_mtu = json.loads(host.exec(["ip", "-j", "link", "show", "eth0"]).stdout)[0]["mtu"]
    data = link["linkinfo"]["info_data"]
    assert link["mtu"] == underlay_mtu - 50
    assert data["id"] == 1 and data["port"] == 8472
    assert data["learning"] is False
    assert data["local"] == host.ip
    peers = mesh3.hosts[1:]
    client = mesh3.etcd_client()
    try:
        leases = {
            meta.key.decode().rsplit("/", 1)[1].replace("-", "/"): json.loads(value)
            for value, meta in client.get_prefix("/vulcano/network/subnets/")
        }
    finally:
        client.close()
    assert len(leases) == 3
    routes = host.exec(["ip", "route", "show", "dev", "vulcano.vxlan"]).stdout
    neighbours = host.exec(["ip", "neigh", "show", "dev", "vulcano.vxlan"]).stdout
    fdb = host.exec(["bridge", "fdb", "show", "dev", "vulcano.vxlan"]).stdout
    for peer in peers:
        subnet = peer.overlay_state()["subnet"]
        gateway = str(ipaddress.IPv4Network(subnet).network_address)
        mac = leases[subnet]["vtep_mac"]
        assert f"{subnet} via {gateway} " in routes and "onlink" in routes
        assert f"{gateway} lladdr {mac} PERMANENT" in neighbours
        assert f"{mac} dst {peer.ip} self permanent" in fdb
    own = host.overlay_state()["subnet"]
    assert own not in routes


def test_subnet_env_has_flannels_variables(mesh3: Underlay) -> None:
    host = mesh3.hosts[1]
    env = host.wait_overlay()
    subnet = ipaddress.IPv4Network(host.overlay_state()["subnet"])
    assert env == {
        "FLANNEL_NETWORK": "10.244.0.0/16",
        "FLANNEL_SUBNET": f"{subnet.network_address + 1}/24",
        "FLANNEL_MTU": "1450",
        "FLANNEL_IPMASQ": "true",
    }


class MeshWatcher:
    """Probes the full mesh in a loop on a thread, recording every failed probe."""

    def __init__(self, hosts: list[TestHost], sandbox: str) -> None:
        self.hosts = hosts
        self.sandbox = sandbox
        self.rounds = 0
        self.failures: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MeshWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        addresses = {h.netns: h.sandbox_ip(self.sandbox) for h in self.hosts}
        while not self._stop.is_set():
            for h in self.hosts:
                targets = [ip for ns, ip in addresses.items() if ns != h.netns]
                result = h.probe(self.sandbox, targets)
                for ip, outcome in result.items():
                    if not all(outcome.values()):
                        self.failures.append({"from": h.netns, "to": ip, **outcome})
            self.rounds += 1


def start_mesh(underlay: Underlay, n: int, *agent_args: str, **kw: int) -> list[TestHost]:
    hosts = underlay.add_hosts(n)
    underlay.init_network("10.244.0.0/16", 24)
    for host in hosts:
        host.start_agent(*agent_args, **kw)
    for host in hosts:
        host.wait_overlay()
    for host in hosts:
        host.create_sandbox("a")
    results = wait_mesh(hosts, "a", timeout=20)
    assert mesh_ok(results), json.dumps(results, indent=1)
    return hosts


def test_restarted_or_killed_agents_keep_subnet_and_connectivity(underlay: Underlay) -> None:
    hosts = start_mesh(underlay, 3)
    subnets = [h.overlay_state()["subnet"] for h in hosts]
    with MeshWatcher(hosts, "a") as watcher:
        # graceful restart
        assert hosts[1].stop_agent() == 0
        hosts[1].start_agent()
        hosts[1].wait_overlay()
        # crash and restart
        hosts[2].kill_agent()
        hosts[2].start_agent()
        hosts[2].wait_overlay()
        rounds = watcher.rounds
        wait_for(lambda: watcher.rounds >= rounds + 2, 30, "two more probe rounds")
    assert [h.overlay_state()["subnet"] for h in hosts] == subnets
    assert watcher.failures == []
    for host in hosts[1:]:
        assert host.agent is not None
        assert "keeping subnet lease" in host.agent.log(), host.agent.log()


def test_a_gone_node_is_withdrawn_from_its_peers_when_its_lease_expires(
    underlay: Underlay,
) -> None:
    hosts = start_mesh(underlay, 3, subnet_ttl=4)
    gone = hosts[2]
    subnet = gone.overlay_state()["subnet"]
    mac_line = gone.exec(["ip", "-j", "link", "show", "vulcano.vxlan"]).stdout
    mac = json.loads(mac_line)[0]["address"]
    gone.kill_agent()
    underlay.remove_host(gone)

    def withdrawn(host: TestHost) -> bool:
        routes = host.exec(["ip", "route", "show", "dev", "vulcano.vxlan"]).stdout
        neighbours = host.exec(["ip", "neigh", "show", "dev", "vulcano.vxlan"]).stdout
        fdb = host.exec(["bridge", "fdb", "show", "dev", "vulcano.vxlan"]).stdout
        return subnet not in routes and mac not in neighbours and mac not in fdb

    for host in hosts[:2]:
        wait_for(lambda h=host: withdrawn(h), 30, f"withdrawal on {host.netns}")
    client = underlay.etcd_client()
    try:
        assert client.get("/vulcano/network/subnets/" + subnet.replace("/", "-"))[0] is None
    finally:
        client.close()
    results = wait_mesh(hosts[:2], "a", timeout=10)
    assert mesh_ok(results), "the remaining hosts must still reach each other"


def test_twenty_agents_started_at_once_get_twenty_distinct_subnets(underlay: Underlay) -> None:
    hosts = underlay.add_hosts(20)
    # 31 subnets for 20 nodes: racing agents pick the same subnet often
    underlay.init_network("10.244.0.0/19", 24)
    for host in hosts:
        host.start_agent(ttl=10, subnet_ttl=60)
    for host in hosts:
        host.wait_overlay(timeout=90)
    subnets = [h.overlay_state()["subnet"] for h in hosts]
    assert len(set(subnets)) == 20
    client = underlay.etcd_client()
    try:
        owners = [
            json.loads(v)["machine_id"] for v, _ in client.get_prefix("/vulcano/network/subnets/")
        ]
    finally:
        client.close()
    assert sorted(owners) == sorted(h.machine_id for h in hosts)


def test_subnet_exhaustion_is_a_clear_error_with_nothing_configured(underlay: Underlay) -> None:
    hosts = underlay.add_hosts(4)
    underlay.init_network("10.251.0.0/26", 28)  # three /28 subnets
    for host in hosts[:3]:
        host.start_agent()
    for host in hosts[:3]:
        host.wait_overlay()
    last = hosts[3].start_agent()
    assert last.wait(30) == 1
    assert "all 3 /28 subnets of 10.251.0.0/26 are leased" in last.log()
    links = hosts[3].exec(["ip", "-br", "link"]).stdout
    assert "vulcano" not in links
    assert not hosts[3].subnet_env.exists()
    assert hosts[3].exec(["nft", "list", "tables"]).stdout.strip() == ""
    client = underlay.etcd_client()
    try:
        assert client.get("/vulcano/machines/" + hosts[3].machine_id)[0] is None
    finally:
        client.close()


@pytest.mark.slow
def test_etcd_down_for_30s_loses_no_connectivity(underlay: Underlay) -> None:
    hosts = start_mesh(underlay, 3, subnet_ttl=10)
    assert underlay.etcd is not None
    with MeshWatcher(hosts, "a") as watcher:
        underlay.etcd.kill()
        time.sleep(30)  # the outage itself, not a timing assertion
        during = watcher.rounds
        underlay.etcd.start()
        underlay.etcd.wait_healthy()
        wait_for(lambda: watcher.rounds >= during + 3, 60, "probes after the outage")
    assert during >= 3, "the mesh was probed during the outage"
    assert watcher.failures == []
    assert all(h.agent is not None and h.agent.running() for h in hosts)
    client = underlay.etcd_client()
    try:
        wait_for(
            lambda: len(list(client.get_prefix("/vulcano/machines/"))) == 3, 30, "re-registered"
        )
        assert outlives_its_ttl(client, [h.machine_id for h in hosts], ttl=3)
    finally:
        client.close()


def test_an_agent_whose_public_ip_is_not_local_is_refused(underlay: Underlay) -> None:
    host = underlay.add_host()
    underlay.init_network("10.244.0.0/16", 24)
    agent = host.start_agent("--public-ip", "198.51.100.7")  # the last flag wins
    assert agent.wait(30) == 1
    assert "public IP 198.51.100.7 is not an address of this host" in agent.log()
    assert "vulcano" not in host.exec(["ip", "-br", "link"]).stdout
    client = underlay.etcd_client()
    try:
        assert list(client.get_prefix("/vulcano/network/subnets/")) == []
        assert list(client.get_prefix("/vulcano/machines/")) == []
    finally:
        client.close()


def test_an_agent_inside_the_cluster_network_is_refused(underlay: Underlay) -> None:
    from vulcano.network import parse

    host = underlay.add_host()
    # written behind `network init`'s back (it refuses this): the agent must refuse too
    config = parse({"network": str(underlay.subnet.supernet(new_prefix=16)), "subnet_len": 24})
    client = underlay.etcd_client()
    try:
        client.put("/vulcano/network/config", config.to_json())
    finally:
        client.close()
    agent = host.start_agent()
    assert agent.wait(30) == 1
    assert f"overlaps the underlay address {host.ip}" in agent.log()
    assert "vulcano" not in host.exec(["ip", "-br", "link"]).stdout
