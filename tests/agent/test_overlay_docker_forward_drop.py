"""The overlay beside Docker's FORWARD policy DROP: our accepts are inserted where they win.

Docker (through iptables-nft) makes `table ip filter`, chain FORWARD, policy drop; a
packet nftables accepts in our table is still dropped there. Real hosts, real packets.
"""

from __future__ import annotations

import json

import pytest

from agent.overlay.nft import FORWARD_COMMENT
from vulcano.lab.netns import TestHost, Underlay, mesh_ok, wait_mesh

pytestmark = pytest.mark.root

DOCKER_LIKE = """\
table ip filter {
    chain FORWARD { type filter hook forward priority filter; policy drop; }
    chain DOCKER-USER { return; }
}
"""


def docker_forward_drop(host: TestHost) -> None:
    host.exec(["nft", "-f", "-"], input=DOCKER_LIKE)


def forward_rules(host: TestHost) -> list[str]:
    out = host.exec(["nft", "-a", "list", "chain", "ip", "filter", "FORWARD"]).stdout
    return [line.strip() for line in out.splitlines() if FORWARD_COMMENT in line]


def test_cluster_traffic_crosses_a_docker_forward_drop(underlay: Underlay) -> None:
    hosts = underlay.add_hosts(2)
    for host in hosts:
        docker_forward_drop(host)
    underlay.init_network("10.244.0.0/16", 24)
    underlay.start_agents(hosts)
    for host in hosts:
        host.create_sandbox("a")
    results = wait_mesh(hosts, "a", timeout=20)
    assert mesh_ok(results), json.dumps(results, indent=1)
    rules = forward_rules(hosts[0])
    assert len(rules) == 2
    assert any("ip saddr 10.244.0.0/16" in r for r in rules)
    assert any("ip daddr 10.244.0.0/16" in r for r in rules)

    # the control: without our accepts Docker's policy really drops the cluster's traffic,
    # and the agent's next resync puts them back (as after a Docker started later)
    for rule in rules:
        handle = rule.rsplit("handle ", 1)[1]
        hosts[0].exec(["nft", "delete", "rule", "ip", "filter", "FORWARD", "handle", handle])
    dropped = wait_mesh(hosts, "a", timeout=1)
    assert not mesh_ok(dropped)
    results = wait_mesh(hosts, "a", timeout=45)  # RESYNC_INTERVAL is 30 s
    assert mesh_ok(results), json.dumps(results, indent=1)
    assert len(forward_rules(hosts[0])) == 2

    # network down takes our accepts out of Docker's chain and leaves the chain alone
    assert hosts[0].stop_agent() == 0
    assert hosts[0].cli("network", "down").returncode == 0
    assert forward_rules(hosts[0]) == []
    listing = hosts[0].exec(["nft", "list", "chain", "ip", "filter", "FORWARD"]).stdout
    assert "policy drop" in listing
