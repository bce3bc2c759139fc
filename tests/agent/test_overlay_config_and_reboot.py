"""Running agents take a replaced network config, and rebuild sandboxes after a reboot."""

from __future__ import annotations

import json

import pytest

from vulcano.lab.netns import TestHost, Underlay, mesh_ok, wait_mesh
from vulcano.lab.poll import wait_for

pytestmark = pytest.mark.root


def vxlan_settings(host: TestHost) -> tuple[int, int]:
    link = json.loads(host.exec(["ip", "-d", "-j", "link", "show", "vulcano.vxlan"]).stdout)[0]
    data = link["linkinfo"]["info_data"]
    return int(data["id"]), int(data["port"])


def test_running_agents_apply_a_replaced_config_and_keep_their_subnets(
    underlay: Underlay,
) -> None:
    hosts = underlay.add_hosts(2)
    underlay.init_network("10.244.0.0/16", 24)
    underlay.start_agents(hosts)
    for host in hosts:
        host.create_sandbox("a")
    assert mesh_ok(wait_mesh(hosts, "a", timeout=20))
    pids = [h.agent.pid for h in hosts if h.agent is not None]
    subnets = [h.overlay_state()["subnet"] for h in hosts]
    assert [vxlan_settings(h) for h in hosts] == [(1, 8472)] * 2

    # a new VNI and port, and a wider network holding every leased subnet
    underlay.init_network("10.240.0.0/12", 24, "--vni", "42", "--port", "4789", "--replace")
    for host in hosts:
        wait_for(lambda h=host: vxlan_settings(h) == (42, 4789), 20, "the new VXLAN settings")
        wait_for(
            lambda h=host: "FLANNEL_NETWORK=10.240.0.0/12" in h.subnet_env.read_text(),
            20,
            "subnet.env rewritten",
        )
        table = host.exec(["nft", "list", "table", "ip", "vulcano"]).stdout
        assert "10.240.0.0/12" in table and "10.244.0.0/16" not in table
    results = wait_mesh(hosts, "a", timeout=30)
    assert mesh_ok(results), json.dumps(results, indent=1)
    assert [h.agent.pid for h in hosts if h.agent is not None] == pids  # no restart
    assert [h.overlay_state()["subnet"] for h in hosts] == subnets
    assert [h.overlay_state()["network"] for h in hosts] == ["10.240.0.0/12"] * 2


def test_sandboxes_are_rebuilt_after_the_node_reboots(underlay: Underlay) -> None:
    hosts = underlay.add_hosts(2)
    underlay.init_network("10.244.0.0/16", 24)
    underlay.start_agents(hosts)
    for host in hosts:
        host.create_sandbox("a")
    assert mesh_ok(wait_mesh(hosts, "a", timeout=20))
    rebooted = hosts[0]
    subnet = rebooted.overlay_state()["subnet"]
    address = rebooted.sandbox_ip("a")

    # a reboot, as the kernel sees it: the agent, the data path, nftables, subnet.env and
    # every namespace are gone; the state directory (the sandbox records) survives
    rebooted.stop_echo("a")
    rebooted.kill_agent()
    assert rebooted.cli("network", "down").returncode == 0
    rebooted.exec(["ip", "netns", "delete", rebooted.sandbox_netns("a")], check=False)
    assert rebooted.sandbox_netns("a") not in rebooted.exec(["ip", "netns", "list"]).stdout

    rebooted.start_agent()
    rebooted.wait_overlay()
    wait_for(
        lambda: rebooted.sandbox_netns("a") in rebooted.exec(["ip", "netns", "list"]).stdout,
        20,
        "the sandbox's namespace rebuilt",
    )
    rebooted.start_echo("a")
    results = wait_mesh(hosts, "a", timeout=30)
    assert mesh_ok(results), json.dumps(results, indent=1)
    assert rebooted.overlay_state()["subnet"] == subnet
    listed = rebooted.cli("sandbox", "list", "--no-legend").stdout
    assert f"{rebooted.sandbox_netns('a')}\t{address}" in listed
