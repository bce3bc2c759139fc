"""Watch events program the kernel from the last applied state; full resyncs repair it.

The overlay runs in this process, in a test host's namespace, against the underlay's
real etcd; its peers are subnet lease records written to etcd (the nodes behind them
need not exist: the kernel takes the entries all the same). The kernel is read back
with `ip` and `bridge`.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.overlay.component import Overlay
from agent.overlay.datapath import VXLAN_DEVICE
from agent.overlay.leases import SubnetLease
from vulcano.keyspace import Keyspace
from vulcano.lab.forward import entered
from vulcano.lab.netns import NETNS_DIR, TestHost, Underlay
from vulcano.lab.poll import wait_for
from vulcano.watch import Change, current_revision

pytestmark = pytest.mark.root

KEYSPACE = Keyspace()
WAIT = 20.0


@dataclass
class InProcessNode:
    """The node as the overlay sees it (`OverlayNode`), for an overlay in this process."""

    machine_id: str
    public_ip: str
    state_dir: Path
    client: Any
    keyspace: Keyspace = KEYSPACE
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def etcd(self) -> Any:
        return self.client

    def spawn(self, name: str, target: Callable[[], None]) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread


@dataclass
class Running:
    host: TestHost
    overlay: Overlay
    client: Any

    def put_peer(self, n: int, mac: str, public_ip: str) -> None:
        lease = SubnetLease(ipaddress.IPv4Network(f"10.244.{n}.0/24"), f"peer{n}", public_ip, mac)
        self.client.put(KEYSPACE.subnet(str(lease.subnet)), lease.to_json())

    def delete_peer(self, n: int) -> None:
        self.client.delete(KEYSPACE.subnet(f"10.244.{n}.0/24"))

    def kernel(self) -> str:
        """Routes, neighbours and FDB entries on the VXLAN device, as one text."""
        return "\n".join(
            self.host.exec(argv).stdout
            for argv in (
                ["ip", "route", "show", "dev", VXLAN_DEVICE],
                ["ip", "neigh", "show", "dev", VXLAN_DEVICE],
                ["bridge", "fdb", "show", "dev", VXLAN_DEVICE],
            )
        )


def programmed(kernel: str, n: int, mac: str, public_ip: str) -> bool:
    """The peer's three entries: route via its VTEP, neighbour, FDB to its public IP."""
    gateway = f"10.244.{n}.0"
    return (
        f"10.244.{n}.0/24 via {gateway} proto 77 onlink" in kernel
        and f"{gateway} lladdr {mac} PERMANENT" in kernel
        and f"{mac} dst {public_ip} self permanent" in kernel
    )


def absent(kernel: str, n: int, mac: str) -> bool:
    return f"10.244.{n}.0" not in kernel and mac not in kernel


def start_overlay(underlay: Underlay, resync_interval: float) -> Iterator[Running]:
    host = underlay.add_host()
    underlay.init_network("10.244.0.0/16", 24)
    client = underlay.etcd_client()
    client.get(KEYSPACE.network_config)  # its channel and threads made here, in the root
    node = InProcessNode(f"m{underlay.token}", host.ip, host.state_dir, client)
    overlay = Overlay(
        node,
        subnet_ttl=60,
        subnet_env_path=host.state_dir / "subnet.env",
        resync_interval=resync_interval,
    )
    try:
        with entered(NETNS_DIR / host.netns):  # the overlay's threads start there too
            overlay.start()
        wait_for(lambda: overlay.peers.resyncs >= 1, WAIT, "the first full resync")
        yield Running(host, overlay, client)
    finally:
        node.stop_event.set()
        overlay.stop()
        for thread in node.threads:
            thread.join(WAIT)
        client.close()


@pytest.fixture
def running(underlay: Underlay) -> Iterator[Running]:
    """An overlay whose periodic resync never comes during the test."""
    yield from start_overlay(underlay, resync_interval=3600.0)


@pytest.fixture
def resyncing(underlay: Underlay) -> Iterator[Running]:
    """An overlay that resyncs fully every second."""
    yield from start_overlay(underlay, resync_interval=1.0)


MAC_A = "02:aa:00:00:00:0a"
MAC_B = "02:bb:00:00:00:0b"


def put_two_peers(run: Running) -> None:
    """Peers 5 and 6 leased, and waited for in the kernel."""
    run.put_peer(5, MAC_A, "192.0.2.50")
    run.put_peer(6, MAC_B, "192.0.2.60")
    wait_for(
        lambda: (
            programmed(k := run.kernel(), 5, MAC_A, "192.0.2.50")
            and programmed(k, 6, MAC_B, "192.0.2.60")
        ),
        WAIT,
        "both peers programmed",
    )


def test_a_new_peer_is_programmed_from_its_watch_event_alone(running: Running) -> None:
    resyncs = running.overlay.peers.resyncs
    put_two_peers(running)
    assert running.overlay.peers.resyncs == resyncs  # no snapshot, no kernel dump
    assert running.overlay.peers.followed >= 1


def test_a_re_leased_peer_is_replaced_and_a_removed_one_withdrawn(running: Running) -> None:
    resyncs = running.overlay.peers.resyncs
    running.put_peer(5, MAC_A, "192.0.2.50")
    running.put_peer(7, MAC_A.replace("0a", "07"), "192.0.2.70")
    wait_for(lambda: programmed(running.kernel(), 5, MAC_A, "192.0.2.50"), WAIT, "peer 5")
    # the same subnet, leased again by a node with another VTEP and public IP
    running.put_peer(5, MAC_B, "192.0.2.55")
    wait_for(
        lambda: programmed(k := running.kernel(), 5, MAC_B, "192.0.2.55") and MAC_A not in k,
        WAIT,
        "peer 5 with its new VTEP, the old one gone",
    )
    running.delete_peer(7)
    wait_for(lambda: absent(running.kernel(), 7, "02:aa:00:00:00:07"), WAIT, "peer 7 withdrawn")
    # changes that land in one batch: only the last state of each lease counts
    running.put_peer(8, MAC_A, "192.0.2.80")
    running.delete_peer(8)
    running.put_peer(9, MAC_A, "192.0.2.90")
    running.put_peer(9, "02:99:00:00:00:09", "192.0.2.99")
    wait_for(
        lambda: (
            programmed(k := running.kernel(), 9, "02:99:00:00:00:09", "192.0.2.99")
            and absent(k, 8, MAC_A)
            and programmed(k, 5, MAC_B, "192.0.2.55")
        ),
        WAIT,
        "only the last state of peers 8 and 9",
    )
    assert running.overlay.peers.resyncs == resyncs


def damage(run: Running, stale: str) -> None:
    """Behind the overlay's back: peer 5's route deleted, a stale peer's entries added."""
    run.host.exec(["ip", "route", "del", "10.244.5.0/24", "dev", VXLAN_DEVICE])
    neighbour = ["10.244.250.0", "lladdr", stale, "dev", VXLAN_DEVICE, "nud", "permanent"]
    run.host.exec(["ip", "neigh", "add", *neighbour])
    run.host.exec(["bridge", "fdb", "append", stale, "dev", VXLAN_DEVICE, "dst", "10.1.1.1"])


def test_watch_batches_do_not_read_the_kernel_and_a_full_resync_repairs_it(
    running: Running,
) -> None:
    run = running
    put_two_peers(run)
    stale = "02:cc:00:00:00:0c"
    damage(run, stale)
    # and a change etcd never made: peer 6 "deleted", as by an event the watch never sent
    # (at a revision of its own: a key outside the overlay's prefixes is written for it)
    run.client.put("/vulcano-test/unrelated", "x")
    revision = current_revision(run.client)
    run.overlay.follow([Change(KEYSPACE.subnet("10.244.6.0/24"), None, 0, revision)])
    # a real event afterwards is applied, and leaves the rest as the overlay believes it
    run.put_peer(7, "02:77:00:00:00:07", "192.0.2.70")
    wait_for(lambda: programmed(run.kernel(), 7, "02:77:00:00:00:07", "192.0.2.70"), WAIT, "7")
    kernel = run.kernel()
    assert "10.244.5.0/24" not in kernel and stale in kernel and absent(kernel, 6, MAC_B)
    resyncs = run.overlay.peers.resyncs
    run.overlay.resync()  # what the periodic one, a lost watch or an error runs
    kernel = run.kernel()
    assert programmed(kernel, 5, MAC_A, "192.0.2.50")
    assert programmed(kernel, 6, MAC_B, "192.0.2.60")
    assert programmed(kernel, 7, "02:77:00:00:00:07", "192.0.2.70")
    assert stale not in kernel
    assert run.overlay.peers.resyncs == resyncs + 1


def test_the_periodic_resync_repairs_the_kernel_with_no_event_at_all(resyncing: Running) -> None:
    run = resyncing
    run.put_peer(5, MAC_A, "192.0.2.50")
    wait_for(lambda: programmed(run.kernel(), 5, MAC_A, "192.0.2.50"), WAIT, "peer 5")
    stale = "02:cc:00:00:00:0c"
    damage(run, stale)
    wait_for(
        lambda: programmed(k := run.kernel(), 5, MAC_A, "192.0.2.50") and stale not in k,
        WAIT,
        "the kernel repaired by a periodic resync",
    )


def test_while_etcd_is_down_nothing_is_removed_and_after_it_the_kernel_follows_again(
    underlay: Underlay, resyncing: Running
) -> None:
    run = resyncing
    run.put_peer(5, MAC_A, "192.0.2.50")
    wait_for(lambda: programmed(run.kernel(), 5, MAC_A, "192.0.2.50"), WAIT, "peer 5")
    assert underlay.etcd is not None
    underlay.etcd.kill()
    try:
        # a full resync failed: the overlay knows it is out of step, and changed nothing
        wait_for(lambda: not run.overlay.peers.in_step, WAIT, "a failed resync")
        assert programmed(run.kernel(), 5, MAC_A, "192.0.2.50")
    finally:
        underlay.etcd.start()
        underlay.etcd.wait_healthy()
    wait_for(lambda: run.overlay.peers.in_step, 60, "a full resync after the outage")
    run.delete_peer(5)
    run.put_peer(6, MAC_B, "192.0.2.60")
    wait_for(
        lambda: absent(k := run.kernel(), 5, MAC_A) and programmed(k, 6, MAC_B, "192.0.2.60"),
        WAIT,
        "peer 5 withdrawn, peer 6 programmed",
    )
