"""Sandboxes: namespaces on the node's bridge with cluster-unique addresses from etcd."""

from __future__ import annotations

import concurrent.futures
import ipaddress
import json
from pathlib import Path

import pytest

from vulcano.lab.netns import NETNS_DIR, TestHost, Underlay
from vulcano.lab.poll import wait_for

pytestmark = pytest.mark.root


def one_host(underlay: Underlay, *agent_args: str) -> TestHost:
    host = underlay.add_host()
    underlay.init_network("10.244.0.0/16", 24)
    host.start_agent(*agent_args)
    if "--no-overlay" not in agent_args:
        host.wait_overlay()
    return host


def addresses(underlay: Underlay) -> dict[str, dict[str, str]]:
    client = underlay.etcd_client()
    try:
        return {
            meta.key.decode().rsplit("/", 1)[1]: json.loads(value)
            for value, meta in client.get_prefix("/vulcano/network/addresses/")
        }
    finally:
        client.close()


def test_create_list_delete(underlay: Underlay) -> None:
    host = one_host(underlay)
    subnet = ipaddress.IPv4Network(host.overlay_state()["subnet"])
    ns = host.sandbox_netns("a")
    ip = host.create_sandbox("a", echo=False)
    assert ipaddress.IPv4Address(ip) == subnet.network_address + 2
    inside = json.loads(host.in_sandbox("a", ["ip", "-j", "addr", "show", "eth0"]).stdout)[0]
    assert {"local": ip, "prefixlen": 24} in [
        {"local": a["local"], "prefixlen": a["prefixlen"]} for a in inside["addr_info"]
    ]
    assert inside["mtu"] == 1450
    route = host.in_sandbox("a", ["ip", "route", "show", "default"]).stdout
    assert f"via {subnet.network_address + 1}" in route
    assert addresses(underlay) == {ip: {"machine_id": host.machine_id, "sandbox": ns}}

    listed = host.cli("sandbox", "list", "--json")
    assert json.loads(listed.stdout) == [{"name": ns, "address": ip}]
    table = host.cli("sandbox", "list").stdout.splitlines()
    assert table == ["NAME\tADDRESS", f"{ns}\t{ip}"]

    deleted = host.delete_sandbox("a")
    assert deleted.returncode == 0, deleted.stderr
    assert not (NETNS_DIR / ns).exists()
    assert addresses(underlay) == {}
    assert json.loads(host.cli("sandbox", "list", "--json").stdout) == []
    links = host.exec(["ip", "-br", "link"]).stdout
    assert "vs" not in " ".join(line.split()[0] for line in links.splitlines())


def test_racing_creates_never_share_an_address(underlay: Underlay) -> None:
    host = one_host(underlay)
    subnet = ipaddress.IPv4Network(host.overlay_state()["subnet"])
    # someone else's sandbox already holds .2 (e.g. claimed by another node's mistake)
    client = underlay.etcd_client()
    try:
        taken = str(subnet.network_address + 2)
        client.put(f"/vulcano/network/addresses/{taken}", '{"machine_id": "x", "sandbox": "y"}')
    finally:
        client.close()
    names = [f"r{i}" for i in range(6)]
    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        results = list(
            pool.map(lambda n: host.cli("sandbox", "create", host.sandbox_netns(n)), names)
        )
    assert [r.returncode for r in results] == [0] * 6, [r.stderr for r in results]
    ips = [r.stdout.strip() for r in results]
    assert len(set(ips)) == 6
    assert taken not in ips
    assert all(ipaddress.IPv4Address(ip) in subnet for ip in ips)
    recorded = addresses(underlay)
    assert sorted(recorded) == sorted([*ips, taken])


def test_sandbox_bad_input_is_refused_and_changes_nothing(
    underlay: Underlay, tmp_path: Path
) -> None:
    host = one_host(underlay)
    mine = f"vs{underlay.token}"  # other test runs make namespaces at the same time
    before = sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(mine))

    bad = host.cli("sandbox", "create", "bad/name")
    assert bad.returncode == 1 and "sandbox name 'bad/name'" in bad.stderr

    host.create_sandbox("dup", echo=False)
    again = host.cli("sandbox", "create", host.sandbox_netns("dup"))
    assert again.returncode == 1 and "already exists" in again.stderr

    missing = host.cli("sandbox", "delete", host.sandbox_netns("nope"))
    assert missing.returncode == 1 and "no sandbox" in missing.stderr

    stray = host.cli(
        "sandbox", "create", host.sandbox_netns("x"), "--state-dir", str(tmp_path), state_dir=False
    )
    assert stray.returncode == 1 and "no agent state in" in stray.stderr

    after = sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(mine))
    assert sorted(set(after) - set(before)) == [host.sandbox_netns("dup")]
    assert len(addresses(underlay)) == 1


def test_sandbox_needs_the_overlay(underlay: Underlay) -> None:
    host = one_host(underlay, "--no-overlay")

    wait_for(lambda: (host.state_dir / "node.json").exists(), 20, "agent state")
    result = host.cli("sandbox", "create", host.sandbox_netns("a"))
    assert result.returncode == 1
    assert "has no overlay subnet yet" in result.stderr
    assert not (NETNS_DIR / host.sandbox_netns("a")).exists()
