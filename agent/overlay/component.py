"""The overlay component: subnet lease, data path, nftables, subnet.env, peer watch.

Started by the agent after it has joined; it sees the node only through `OverlayNode`.
It owns this node's sandboxes (they live on its bridge and take addresses from its
subnet) and its state file, overlay.json. Its threads:

- renew: refreshes the subnet lease well before it expires; re-acquires it (preferring
  the same subnet) when it was lost, e.g. after a long etcd outage.
- peer-watch and reconcile: watch the subnet leases; each batch of changes is applied
  against the entries last applied (agent/overlay/peers.py), without reading etcd or the
  kernel back; at start, every RESYNC_INTERVAL, after a lost watch and after any error a
  full resync snapshots every lease, reads the kernel's entries and repairs them. While
  etcd is unreachable nothing is removed: the kernel keeps the last programmed data
  path. The same watch covers the network config: a config replaced with `network init
  --replace` (which keeps every leased subnet valid) is applied without a restart —
  VXLAN device, nftables, overlay.json and subnet.env.

Stopping the agent leaves the data path and the lease alone, so a restarted agent keeps
its subnet and its sandboxes never lose connectivity; `vulcano-agent network down`
removes the data path and gives the subnet back. After a reboot (or a `network down`)
the sandboxes recorded in the state directory are plumbed again with their addresses.
"""

from __future__ import annotations

import ipaddress
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from agent import policy
from agent.overlay import nft, subnet_env
from agent.overlay.datapath import DataPath, Devices, vtep_mac_for
from agent.overlay.leases import SubnetLease, acquire
from agent.overlay.peers import Peers
from agent.overlay.sandboxes import NodeSandboxes
from agent.overlay.state import OverlayState
from vulcano import policy as core_policy
from vulcano.errors import VulcanoError
from vulcano.etcd import is_unreachable, refresh_lease, retry_while_unreachable
from vulcano.keyspace import Keyspace
from vulcano.network import NetworkConfig, check_overlap
from vulcano.watch import Change, PrefixWatch, Resync, current_revision

log = logging.getLogger(__name__)

_RESYNC = "resync"
_CONFIG = "config"
_STOP = "stop"


class OverlayNode(Protocol):
    """What the overlay uses of the node it runs on."""

    @property
    def machine_id(self) -> str: ...
    @property
    def public_ip(self) -> str: ...
    @property
    def keyspace(self) -> Keyspace: ...
    @property
    def state_dir(self) -> Path: ...
    @property
    def stop_event(self) -> threading.Event: ...

    def etcd(self) -> Any:
        """The node's etcd client."""

    def spawn(self, name: str, target: Callable[[], None]) -> threading.Thread:
        """Start a thread that the node joins on shutdown."""


def load_network_config(client: Any, keyspace: Keyspace) -> NetworkConfig | None:
    value, _ = client.get(keyspace.network_config)
    if value is None:
        return None
    return NetworkConfig.from_json(value)


class Overlay:
    """The VXLAN overlay of one node."""

    def __init__(
        self,
        node: OverlayNode,
        *,
        subnet_ttl: int,
        subnet_env_path: Path,
        resync_interval: float = policy.RESYNC_INTERVAL,
    ) -> None:
        self.node = node
        self.resync_interval = resync_interval
        self.subnet_ttl = subnet_ttl
        self.subnet_env_path = subnet_env_path
        self.sandboxes = NodeSandboxes(node.state_dir, client=node.etcd)
        self.config: NetworkConfig | None = None
        self.lease: SubnetLease | None = None
        self.devices: Devices | None = None
        self._datapath: DataPath | None = None
        self._dp_lock = threading.RLock()
        self._sync_lock = threading.Lock()  # one snapshot or batch at a time, in order
        self._events: queue.Queue[object] = queue.Queue()
        self._watch: PrefixWatch | None = None
        self.peers = Peers(node.keyspace, node.machine_id)
        self.reconciles = 0  # how many times the kernel was reconciled (for tests/bench)
        self._forward = nft.ForwardGuard()
        self.ready = threading.Event()

    # -- component -------------------------------------------------------------------
    def start(self) -> None:
        """Lease a subnet and program the node; raises when that can never succeed."""
        self._datapath = DataPath()
        self.config = self._wait_for_config()
        if self.config is None:
            return
        self._setup()
        self.node.spawn("subnet-renew", self._renew_loop)
        self.node.spawn("peer-watch", self._watch_loop)
        self.node.spawn("reconcile", self._reconcile_loop)
        self.ready.set()

    def stop(self) -> None:
        self._events.put(_STOP)
        watch = self._watch
        if watch is not None:
            watch.cancel()
        with self._dp_lock:
            if self._datapath is not None:
                self._datapath.close()
                self._datapath = None

    # -- setup -----------------------------------------------------------------------
    def _retrying(self, what: str, call: Any) -> Any:
        """call() until it succeeds; etcd errors are waited out, ours propagate."""
        return retry_while_unreachable(call, what, stop=self.node.stop_event, log=log.warning)

    def _wait_for_config(self) -> NetworkConfig | None:
        node = self.node
        announced = False
        while not node.stop_event.is_set():
            config: NetworkConfig | None = self._retrying(
                "reading network config", lambda: load_network_config(node.etcd(), node.keyspace)
            )
            if config is not None:
                check_overlap(config, [node.public_ip])
                return config
            if not announced:
                log.warning(
                    "no network config at %s yet: run `vulcano-agent network init`",
                    node.keyspace.network_config,
                )
                announced = True
            node.stop_event.wait(policy.NETWORK_CONFIG_POLL)
        return None

    def _setup(self, preferred: ipaddress.IPv4Network | None = None) -> None:
        node = self.node
        assert self.config is not None and self._datapath is not None
        # Before touching etcd: the public IP must be ours, or nothing may be changed.
        self._datapath.underlay(node.public_ip)
        previous = OverlayState.load(node.state_dir)
        if preferred is None and previous is not None and previous.subnet:
            preferred = ipaddress.IPv4Network(previous.subnet)
        wanted = SubnetLease(
            subnet=ipaddress.IPv4Network("0.0.0.0/32"),
            machine_id=node.machine_id,
            public_ip=node.public_ip,
            vtep_mac=vtep_mac_for(node.machine_id),
        )
        config = self.config
        acquired: tuple[SubnetLease, bool] | None = self._retrying(
            "leasing a subnet",
            lambda: acquire(node.etcd(), node.keyspace, config, wanted, self.subnet_ttl, preferred),
        )
        if acquired is None:
            return
        lease, created = acquired
        if self.lease is not None and self.lease.subnet != lease.subnet:
            log.warning(
                "subnet changed from %s to %s: sandboxes made before must be re-created",
                self.lease.subnet,
                lease.subnet,
            )
        try:
            with self._dp_lock:
                self.peers.forget()  # a recreated VXLAN device lost its entries
                self.devices = self._datapath.ensure_devices(
                    config, lease.subnet, node.public_ip, lease.vtep_mac
                )
            nft.apply(config.network)
        except BaseException:
            if created:  # leave nothing behind that this failed attempt made
                node.etcd().revoke_lease(lease.lease_id)
            raise
        # Our own state first: subnet.env is what others wait for (Docker, the sandbox
        # commands' callers), and the sandbox commands read overlay.json.
        OverlayState(
            network=str(config.network), subnet=str(lease.subnet), mtu=self.devices.mtu
        ).save(node.state_dir)
        subnet_env.write(
            self.subnet_env_path, subnet_env.render(config, lease.subnet, self.devices.mtu)
        )
        self.lease = lease
        self._retrying(
            "re-claiming sandbox addresses",
            lambda: self.sandboxes.reclaim(
                node.etcd(), node.keyspace, node.machine_id, lease.lease_id
            ),
        )
        try:
            self.sandboxes.rebuild(lease.subnet, self.devices.mtu)
        except Exception:  # one broken sandbox must not keep the overlay down
            log.exception("rebuilding this node's sandboxes failed")
        log.info("overlay up: subnet %s, mtu %s", lease.subnet, self.devices.mtu)

    # -- renew -----------------------------------------------------------------------
    def _renew_loop(self) -> None:
        node = self.node
        interval = self.subnet_ttl / policy.SUBNET_RENEW_DIVISOR
        delays = policy.DAEMON_RETRY.delays()
        wait = interval
        while not node.stop_event.wait(wait):
            lease = self.lease
            assert lease is not None
            try:
                if refresh_lease(node.etcd(), lease.lease_id) > 0:
                    wait = interval
                    delays = policy.DAEMON_RETRY.delays()
                    continue
                log.warning("subnet lease %s expired: leasing again", lease.subnet)
                self._setup(preferred=lease.subnet)
                self._events.put(_RESYNC)
                wait = interval
            except Exception as exc:
                log.warning("cannot renew subnet lease %s: %s", lease.subnet, exc)
                wait = min(next(delays), interval)

    # -- peers -----------------------------------------------------------------------
    def _watch_loop(self) -> None:
        """Keep a watch on the subnet leases: a new watch asks for a full resync, each
        batch of lease changes is handed on to be applied."""
        stop = self.node.stop_event
        delays = core_policy.ETCD_RECONNECT.delays()
        while not stop.is_set():
            try:
                self._follow_leases()
            except Resync as exc:
                if stop.is_set():
                    return
                log.warning("peer watch lost (%s): keeping the data path as it is", exc)
                delays = core_policy.ETCD_RECONNECT.delays()
            except Exception as exc:
                if not is_unreachable(exc):
                    log.exception("watching peers failed")
                else:
                    log.warning("cannot watch peers (%s): keeping the data path as it is", exc)
            stop.wait(next(delays))

    def _follow_leases(self) -> None:
        """Watch from now, resync once, then hand on every batch; raises Resync."""
        node = self.node
        client = node.etcd()
        revision = current_revision(client)
        watch = PrefixWatch(
            client, [node.keyspace.subnets, node.keyspace.network_config], revision + 1
        )
        self._watch = watch
        try:
            if node.stop_event.is_set():  # stop() may have missed this watch
                return
            # The kernel catches up with every lease (and the config) up to the watch's
            # start; the watch brings every change after it.
            self._events.put(_CONFIG)
            self._events.put(_RESYNC)
            while True:
                item = watch.events.get()
                if isinstance(item, Resync):
                    raise item
                if any(c.key == node.keyspace.network_config for c in item):
                    self._events.put(_CONFIG)
                leases = [c for c in item if c.key.startswith(node.keyspace.subnets)]
                if leases:
                    self._events.put(leases)
        finally:
            self._watch = None
            watch.cancel()

    def _reconcile_loop(self) -> None:
        """Apply each burst of watch events; resync fully when asked, every
        RESYNC_INTERVAL, and after errors (until one succeeds)."""
        stop = self.node.stop_event
        delays = core_policy.ETCD_RECONNECT.delays()
        due = time.monotonic() + self.resync_interval  # the next full resync
        while not stop.is_set():
            try:
                batch = [self._events.get(timeout=max(0.0, due - time.monotonic()))]
            except queue.Empty:
                batch = [_RESYNC]
            stop.wait(policy.WATCH_COALESCE)
            while True:
                try:
                    batch.append(self._events.get_nowait())
                except queue.Empty:
                    break
            if any(item is _STOP for item in batch):
                return
            reload_config = any(item is _CONFIG for item in batch)
            full = reload_config or any(item is _RESYNC for item in batch)
            full = full or not self.peers.in_step or time.monotonic() >= due
            changes = [c for item in batch if isinstance(item, list) for c in item]
            try:
                if reload_config:
                    self._reload_config()
                if full:
                    self.resync()
                    due = time.monotonic() + self.resync_interval
                elif changes:
                    self.follow(changes)
                delays = core_policy.ETCD_RECONNECT.delays()
            except Exception as exc:
                self.peers.forget()
                if not is_unreachable(exc):
                    log.exception("reconciling the data path failed")
                else:
                    log.warning("cannot list peers (%s): keeping the data path as it is", exc)
                    watch = self._watch
                    if watch is not None:
                        watch.cancel()  # a silently dead stream is replaced too
                due = time.monotonic() + next(delays)

    def _reload_config(self) -> None:
        """Apply a replaced network config to this node, keeping its subnet."""
        node = self.node
        new = load_network_config(node.etcd(), node.keyspace)
        if new is None or new == self.config or self.lease is None:
            return
        try:
            check_overlap(new, [node.public_ip])
        except VulcanoError as exc:
            log.error("not applying the new network config: %s", exc)
            return
        if not new.contains_subnet(self.lease.subnet):
            log.error(
                "not applying the new network config: this node's subnet %s is outside it "
                "(run `vulcano-agent network down` here, then restart the agent)",
                self.lease.subnet,
            )
            return
        log.info("network config changed: re-programming this node for %s", new.to_json())
        self.config = new
        self._setup(preferred=self.lease.subnet)

    def resync(self) -> None:
        """Snapshot every subnet lease, read the kernel's entries back and make them
        match (etcd errors propagate, before anything is changed)."""
        node = self.node
        assert self.config is not None
        with self._sync_lock:
            records = self.peers.read(node.etcd())
            with self._dp_lock:
                if self._datapath is None or self.devices is None:
                    return
                vx = self._datapath.vxlan_index()
                if vx is None:
                    log.warning("VXLAN device vanished: recreating it")
                    assert self.lease is not None
                    self.devices = self._datapath.ensure_devices(
                        self.config, self.lease.subnet, node.public_ip, self.lease.vtep_mac
                    )
                    vx = self.devices.vxlan_index
                self.peers.resync(self._datapath, vx, self.config, records)
                # Docker (or anyone) may have set a FORWARD policy of DROP since: win over it
                self._forward.check(self.config.network)
                self.reconciles += 1

    def follow(self, changes: list[Change]) -> None:
        """Apply changed subnet leases against the last applied state; a full resync
        when that is unknown (the VXLAN device was just made again, say)."""
        assert self.config is not None
        with self._sync_lock, self._dp_lock:
            if self._datapath is None or self.devices is None:
                return
            if self.peers.in_step:
                self.peers.follow(self._datapath, self.devices.vxlan_index, self.config, changes)
                self.reconciles += 1
                return
        self.resync()
