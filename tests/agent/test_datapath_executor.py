"""The executor against a real network namespace: devices, plans applied, reads back."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from agent.overlay.datapath import BRIDGE, VXLAN_DEVICE, DataPath, vtep_mac_for
from agent.overlay.plan import DataPathState, FdbEntry, Neighbour, Route, plan
from agent.overlay.sandboxes import in_namespace
from vulcano.lab.netns import Underlay
from vulcano.network import parse

pytestmark = pytest.mark.root

CONFIG = parse({"network": "10.244.0.0/16", "subnet_len": 24})
SUBNET = ipaddress.IPv4Network("10.244.7.0/24")
PEERS = DataPathState(
    frozenset(
        {Neighbour("10.244.1.0", "02:00:00:00:00:01"), Neighbour("10.244.2.0", "02:00:00:00:00:02")}
    ),
    frozenset(
        {FdbEntry("02:00:00:00:00:01", "192.0.2.11"), FdbEntry("02:00:00:00:00:02", "192.0.2.12")}
    ),
    frozenset({Route("10.244.1.0/24", "10.244.1.0"), Route("10.244.2.0/24", "10.244.2.0")}),
)


def in_host(underlay: Underlay, work: Any) -> Any:
    host = underlay.hosts[0]
    out: list[Any] = []
    in_namespace(host.netns, lambda ipr: out.append(work(DataPath(ipr), host.ip)))
    return out[0]


@pytest.fixture
def net(underlay: Underlay) -> Underlay:
    underlay.add_host()
    return underlay


def test_devices_are_created_once_and_kept(net: Underlay) -> None:
    mac = vtep_mac_for("m1")

    def twice(dp: DataPath, ip: str) -> tuple[Any, Any]:
        return dp.ensure_devices(CONFIG, SUBNET, ip, mac), dp.ensure_devices(
            CONFIG, SUBNET, ip, mac
        )

    first, second = in_host(net, twice)
    assert first == second
    assert first.mtu == 1450 and first.vtep_mac == mac
    host = net.hosts[0]
    detail = host.exec(["ip", "-d", "addr", "show", VXLAN_DEVICE]).stdout
    assert "nolearning" in detail and "dstport 8472" in detail and f"local {host.ip}" in detail
    assert mac in detail and "inet 10.244.7.0/32" in detail
    assert "inet 10.244.7.1/24" in host.exec(["ip", "addr", "show", BRIDGE]).stdout
    assert host.exec(["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip() == "1"


def test_a_changed_config_recreates_the_vxlan_device(net: Underlay) -> None:
    mac = vtep_mac_for("m1")
    other = parse({"network": "10.244.0.0/16", "subnet_len": 24, "vni": 9})

    def change(dp: DataPath, ip: str) -> tuple[Any, Any]:
        return dp.ensure_devices(CONFIG, SUBNET, ip, mac), dp.ensure_devices(other, SUBNET, ip, mac)

    before, after = in_host(net, change)
    assert before.vxlan_index != after.vxlan_index
    assert "vxlan id 9 " in net.hosts[0].exec(["ip", "-d", "link", "show", VXLAN_DEVICE]).stdout


def test_applied_plans_read_back_exactly_and_leave_foreign_routes_alone(net: Underlay) -> None:
    def run(dp: DataPath, ip: str) -> tuple[DataPathState, DataPathState, DataPathState, bool]:
        devices = dp.ensure_devices(CONFIG, SUBNET, ip, vtep_mac_for("m1"))
        vx = devices.vxlan_index
        dp.apply(vx, plan(PEERS, dp.read_state(vx)))
        programmed = dp.read_state(vx)
        dp.apply(vx, plan(PEERS, programmed))  # applying again changes nothing
        again = dp.read_state(vx)
        # someone else's route on our device: not ours, never removed
        dp.ipr.route("add", dst="10.99.0.0/24", oif=vx)
        dp.apply(vx, plan(DataPathState(), dp.read_state(vx)))
        emptied = dp.read_state(vx)
        foreign = any(r.get("RTA_DST") == "10.99.0.0" for r in dp.ipr.get_routes(oif=vx, family=2))
        return programmed, again, emptied, foreign

    programmed, again, emptied, foreign_kept = in_host(net, run)
    assert programmed == PEERS
    assert again == PEERS
    assert emptied == DataPathState()
    assert foreign_kept


def test_teardown_removes_both_devices(net: Underlay) -> None:
    def run(dp: DataPath, ip: str) -> tuple[list[str], list[str]]:
        dp.ensure_devices(CONFIG, SUBNET, ip, vtep_mac_for("m1"))
        return dp.teardown(), dp.teardown()

    removed, again = in_host(net, run)
    assert removed == [VXLAN_DEVICE, BRIDGE]
    assert again == []
