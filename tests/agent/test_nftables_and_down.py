"""nftables: masquerade out of the cluster network only, idempotent; `network down` cleans up."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import pytest

from vulcano.lab.netns import REPO, Underlay
from vulcano.lab.poll import wait_for

pytestmark = pytest.mark.root

PEER_ADDRESS_SERVER = (
    "import socket,sys\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', 7778)); s.listen(1); print('ready', flush=True)\n"
    "c,a=s.accept(); c.sendall(a[0].encode()); c.close()\n"
)
CONNECT = (
    "import socket,sys\n"
    "c=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)\n"
    "print(c.recv(100).decode())\n"
)


def subnet_leases(underlay: Underlay) -> list[str]:
    """The subnets leased in etcd right now."""
    client = underlay.etcd_client()
    try:
        return sorted(
            meta.key.decode().rsplit("/", 1)[1].replace("-", "/")
            for _, meta in client.get_prefix("/vulcano/network/subnets/")
        )
    finally:
        client.close()


def stateless_table(host_exec: object) -> str:
    out: str = host_exec(["nft", "-s", "list", "table", "ip", "vulcano"]).stdout  # type: ignore[operator]
    return out


def test_traffic_leaving_the_cluster_is_masqueraded_and_inside_is_not(underlay: Underlay) -> None:
    hosts = underlay.add_hosts(2)
    underlay.init_network("10.244.0.0/16", 24)
    underlay.start_agents(hosts)
    a = hosts[0].create_sandbox("a", echo=False)
    b = hosts[1].create_sandbox("b", echo=False)

    # out of the cluster: a server on the underlay (outside every host) sees the host's IP
    seen: list[str] = []
    with underlay.entered():
        server = socket.socket()
    server.bind((underlay.gateway, 0))
    server.listen(1)
    port = server.getsockname()[1]

    def accept() -> None:
        conn, peer = server.accept()
        seen.append(peer[0])
        conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    hosts[0].in_sandbox("a", [sys.executable, "-c", CONNECT, underlay.gateway, str(port)])
    thread.join(10)
    server.close()
    assert seen == [hosts[0].ip]

    # inside the cluster: the peer sandbox sees the sandbox's own address
    listener = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            hosts[1].sandbox_netns("b"),
            sys.executable,
            "-c",
            PEER_ADDRESS_SERVER,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "ready"
        out = hosts[0].in_sandbox("a", [sys.executable, "-c", CONNECT, b, "7778"]).stdout
        assert out.strip() == a
    finally:
        listener.kill()
        listener.wait(10)
        if listener.stdout is not None:
            listener.stdout.close()


def test_rules_are_idempotent_and_removed_by_network_down(underlay: Underlay) -> None:
    host = underlay.add_host()
    underlay.init_network("10.244.0.0/16", 24)
    host.start_agent()
    host.wait_overlay()
    first = stateless_table(host.exec)
    assert "ip saddr 10.244.0.0/16 ip daddr 10.244.0.0/16 return" in first
    assert "masquerade" in first and "hook forward" in first
    assert host.stop_agent() == 0
    host.start_agent()
    host.wait_overlay()
    assert stateless_table(host.exec) == first
    assert host.exec(["nft", "list", "tables"]).stdout.split().count("vulcano") == 1

    refused = host.cli("network", "down")
    assert refused.returncode == 1 and "stop it first" in refused.stderr
    assert "vulcano.vxlan" in host.exec(["ip", "-br", "link"]).stdout

    assert host.stop_agent() == 0
    subnet = host.overlay_state()["subnet"]
    assert subnet_leases(underlay) == [subnet]
    down = host.cli("network", "down")
    assert down.returncode == 0, down.stderr
    assert "vulcano.vxlan" in down.stdout and "nftables" in down.stdout
    # the subnet goes back to the cluster at once, not when its lease would expire
    assert f"subnet lease {subnet}" in down.stdout
    assert subnet_leases(underlay) == []
    links = host.exec(["ip", "-br", "link"]).stdout
    assert "vulcano" not in links
    assert "vulcano" not in host.exec(["nft", "list", "tables"]).stdout
    assert not host.subnet_env.exists()
    again = host.cli("network", "down")
    assert again.returncode == 0 and "nothing" in again.stdout


def test_restarted_agent_rebuilds_a_removed_overlay_with_the_same_subnet(
    underlay: Underlay,
) -> None:
    host = underlay.add_host()
    underlay.init_network("10.244.0.0/16", 24)
    host.start_agent()
    host.wait_overlay()
    subnet = host.overlay_state()["subnet"]
    assert host.stop_agent() == 0
    assert host.cli("network", "down").returncode == 0
    host.start_agent()
    env = host.wait_overlay()
    assert host.overlay_state()["subnet"] == subnet
    assert env["FLANNEL_SUBNET"].rsplit(".", 1)[0] == subnet.rsplit(".", 1)[0]
    wait_for(lambda: "vulcano.vxlan" in host.exec(["ip", "-br", "link"]).stdout, 10, "vxlan back")
