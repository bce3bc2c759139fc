"""The reconciler repairs what it finds: stale entries after a restart, a lost subnet lease."""

from __future__ import annotations

import json

import pytest

from vulcano.lab.netns import TestHost, Underlay, mesh_ok, wait_mesh
from vulcano.lab.poll import wait_for

pytestmark = pytest.mark.root


def start(underlay: Underlay, n: int) -> list[TestHost]:
    hosts = underlay.add_hosts(n)
    underlay.init_network("10.244.0.0/16", 24)
    for host in hosts:
        host.start_agent()
    for host in hosts:
        host.wait_overlay()
    return hosts


def test_entries_left_from_before_a_restart_are_resynced(underlay: Underlay) -> None:
    hosts = start(underlay, 2)
    host, peer = hosts
    peer_subnet = peer.overlay_state()["subnet"]
    wait_for(
        lambda: peer_subnet in host.exec(["ip", "route", "show", "proto", "77"]).stdout,
        20,
        "peer route",
    )
    # a subnet no agent leased (subnets are picked at random: never one of theirs)
    leased = {peer_subnet, host.overlay_state()["subnet"]}
    stale = next(f"10.244.{n}.0" for n in range(250, 256) if f"10.244.{n}.0/24" not in leased)
    assert host.stop_agent() == 0
    # while the agent is down: a stale peer appears in the kernel and a real one vanishes
    host.exec(["ip", "route", "del", peer_subnet, "dev", "vulcano.vxlan"])
    host.exec(
        [
            "ip",
            "neigh",
            "add",
            stale,
            "lladdr",
            "02:aa:00:00:00:01",
            "dev",
            "vulcano.vxlan",
            "nud",
            "permanent",
        ]
    )
    host.exec(
        ["bridge", "fdb", "append", "02:aa:00:00:00:01", "dev", "vulcano.vxlan", "dst", "10.1.1.1"]
    )
    host.exec(
        [
            "ip",
            "route",
            "add",
            f"{stale}/24",
            "via",
            stale,
            "dev",
            "vulcano.vxlan",
            "onlink",
            "proto",
            "77",
        ]
    )
    host.start_agent()
    host.wait_overlay()

    def repaired() -> bool:
        routes = host.exec(["ip", "route", "show", "dev", "vulcano.vxlan"]).stdout
        neighbours = host.exec(["ip", "neigh", "show", "dev", "vulcano.vxlan"]).stdout
        fdb = host.exec(["bridge", "fdb", "show", "dev", "vulcano.vxlan"]).stdout
        return (
            peer_subnet in routes
            and stale not in routes + neighbours
            and "02:aa:00:00:00:01" not in fdb
        )

    wait_for(repaired, 20, "resync after restart")


def test_a_lost_subnet_lease_is_taken_again_with_the_same_subnet(underlay: Underlay) -> None:
    hosts = start(underlay, 2)
    for host in hosts:
        host.create_sandbox("a")
    subnet = hosts[0].overlay_state()["subnet"]
    sandbox_ip = hosts[0].sandbox_ip("a")
    key = "/vulcano/network/subnets/" + subnet.replace("/", "-")
    client = underlay.etcd_client()
    try:
        _, meta = client.get(key)
        client.revoke_lease(meta.lease_id)  # what an outage longer than the TTL does

        def taken_again() -> bool:
            _value, new = client.get(key)
            return new is not None and new.lease_id != meta.lease_id

        wait_for(taken_again, 20, "subnet leased again")
        value, _ = client.get(key)
        assert json.loads(value)["machine_id"] == hosts[0].machine_id
        wait_for(
            lambda: client.get(f"/vulcano/network/addresses/{sandbox_ip}")[0] is not None,
            20,
            "sandbox address claimed again",
        )
    finally:
        client.close()
    assert hosts[0].overlay_state()["subnet"] == subnet
    results = wait_mesh(hosts, "a", timeout=20)
    assert mesh_ok(results), json.dumps(results)
