"""Container sandboxes: a network namespace plugged into the node's bridge.

A sandbox NAME is a named network namespace (so `ip netns exec NAME ...` works) with
`eth0`, one end of a veth pair whose other end (`vs<hash>`) is a port of the node's
bridge, an address from the node's subnet and a default route via the bridge.

Its address is claimed in etcd (keyspace.address(ip)) by a transaction that only succeeds
when nobody holds it, on the node's subnet lease, so no two sandboxes in the cluster ever
share an address and a dead node's addresses go with its subnet.

Namespaces are made with `ip netns add` (it makes the bind mount visible to every mount
namespace) and configured from a short-lived thread that has entered the namespace, so
the agent never forks while it has gRPC threads. Run the agent and these commands in a
host's network namespace with `nsenter --net=...`: `ip netns exec` gives its child a
private mount namespace, where a new namespace's mount would be invisible to others.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agent import policy
from agent.overlay import netlink
from agent.overlay.datapath import BRIDGE
from agent.overlay.state import OverlayState
from agent.statedir import NodeState, read_json, write_json
from vulcano import etcdhttp
from vulcano import policy as core_policy
from vulcano.errors import VulcanoError
from vulcano.keyspace import Keyspace
from vulcano.network import bridge_address, sandbox_addresses

log = logging.getLogger(__name__)

SANDBOX_IFNAME = "eth0"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class SandboxError(VulcanoError):
    """A sandbox operation we cannot do; says why."""


class SandboxNotFound(SandboxError, LookupError):
    """No sandbox of that name on this node."""


@dataclass(frozen=True)
class Sandbox:
    name: str
    address: str  # "10.244.3.2/24"
    host_veth: str

    @property
    def ip(self) -> str:
        return self.address.split("/")[0]


def validate_name(name: str) -> str:
    if not _NAME.match(name):
        raise SandboxError(
            f"sandbox name {name!r} must be 1-63 letters, digits, '_', '.', '-' "
            "(starting with a letter or digit)"
        )
    return name


def host_veth_name(name: str) -> str:
    """The bridge-side veth's name: stable per sandbox, at most 15 characters."""
    return "vs" + hashlib.sha256(name.encode()).hexdigest()[:12]


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


class NodeSandboxes:
    """Creates, lists and deletes this node's sandboxes.

    Reads the agent's node.json (cluster, machine id) and the overlay's overlay.json
    (subnet, MTU), so the one-shot `vulcano-agent sandbox` commands and the running agent
    work the same way.
    """

    def __init__(self, state_dir: Path, client: Callable[[], Any] | None = None) -> None:
        self.state_dir = state_dir
        self._client_fn = client
        self._own_client: Any = None
        self._lock = threading.Lock()

    @property
    def dir(self) -> Path:
        return self.state_dir / "sandboxes"

    def _node(self) -> tuple[NodeState, OverlayState]:
        node = NodeState.load(self.state_dir)
        if node is None:
            raise SandboxError(
                f"no agent state in {self.state_dir}: start `vulcano-agent run` first "
                "(or pass the --state-dir it uses)"
            )
        overlay = OverlayState.load(self.state_dir)
        if overlay is None or not overlay.subnet:
            raise SandboxError(
                f"the agent using {self.state_dir} has no overlay subnet yet "
                "(is it running with --overlay, and is the network initialised?)"
            )
        return node, overlay

    def _client(self, node: NodeState) -> Any:
        if self._client_fn is not None:
            return self._client_fn()
        if self._own_client is None:
            self._own_client = etcdhttp.connect(node.etcd_endpoints, tls=node.tls())
        return self._own_client

    def close(self) -> None:
        if self._own_client is not None:
            self._own_client.close()
            self._own_client = None

    # -- read --------------------------------------------------------------------------
    def list(self) -> list[Sandbox]:
        result = []
        if self.dir.is_dir():
            for path in sorted(self.dir.glob("*.json")):
                data = read_json(path)
                if isinstance(data, dict):
                    try:
                        result.append(Sandbox(**data))
                    except TypeError:
                        log.warning("ignoring unreadable sandbox record %s", path)
        return result

    def get(self, name: str) -> Sandbox:
        data = read_json(self.dir / f"{validate_name(name)}.json")
        if not isinstance(data, dict):
            raise SandboxNotFound(f"no sandbox {name!r} on this node ({self.state_dir})")
        return Sandbox(**data)

    def address_of(self, name: str) -> str | None:
        """The overlay address of sandbox ``name`` if this node has it, else None."""
        try:
            return self.get(name).ip
        except SandboxError:
            return None

    # -- create ------------------------------------------------------------------------
    def create(self, name: str) -> str:
        """Make the sandbox; its overlay address (without prefix length)."""
        validate_name(name)
        with self._lock:
            node, overlay = self._node()
            if (self.dir / f"{name}.json").exists():
                raise SandboxError(f"sandbox {name!r} already exists on this node")
            if netns_exists(name):
                raise SandboxError(f"network namespace {name!r} already exists")
            subnet = ipaddress.IPv4Network(overlay.subnet)
            with netlink.iproute() as ipr:
                if not ipr.link_lookup(ifname=BRIDGE):
                    raise SandboxError(f"bridge {BRIDGE} is missing: the overlay is not up")
            client = self._client(node)
            keyspace = Keyspace(node.prefix)
            ip = _claim_address(client, keyspace, subnet, node.machine_id, name)
            sandbox = Sandbox(name, f"{ip}/{subnet.prefixlen}", host_veth_name(name))
            try:
                _plumb(sandbox, subnet, overlay.mtu)
            except BaseException:
                _unplumb(sandbox)
                _release_address(client, keyspace, str(ip), node.machine_id, name)
                raise
            write_json(self.dir / f"{name}.json", asdict(sandbox))
            log.info("sandbox %s at %s", name, sandbox.address)
            return str(ip)

    # -- delete ------------------------------------------------------------------------
    def delete(self, name: str) -> None:
        sandbox = self.get(name)
        with self._lock:
            node = NodeState.load(self.state_dir)
            if node is not None:
                _release_address(
                    self._client(node), Keyspace(node.prefix), sandbox.ip, node.machine_id, name
                )
            _unplumb(sandbox)
            (self.dir / f"{name}.json").unlink(missing_ok=True)

    def rebuild(self, subnet: ipaddress.IPv4Network, mtu: int) -> tuple[str, ...]:
        """Plumb again the recorded sandboxes the kernel lost (a reboot); their names.

        The records (state directory) outlive a reboot, the namespaces and veths do not.
        A sandbox whose namespace and veth are there is only put back on the bridge.
        """
        rebuilt: tuple[str, ...] = ()
        with self._lock:
            for sandbox in self.list():
                if ipaddress.IPv4Address(sandbox.ip) not in subnet:
                    log.warning(
                        "sandbox %s (%s) is outside this node's subnet %s: delete it and "
                        "create it again",
                        sandbox.name,
                        sandbox.ip,
                        subnet,
                    )
                    continue
                with netlink.iproute() as ipr:
                    veth = ipr.link_lookup(ifname=sandbox.host_veth)
                    if veth and netns_exists(sandbox.name):
                        bridge = ipr.link_lookup(ifname=BRIDGE)[0]
                        ipr.link("set", index=veth[0], master=bridge, state="up")
                        continue
                _unplumb(sandbox)  # whatever half of it is left
                _plumb(sandbox, subnet, mtu)
                log.info("rebuilt sandbox %s at %s", sandbox.name, sandbox.address)
                rebuilt += (sandbox.name,)
        return rebuilt

    def reclaim(self, client: Any, keyspace: Keyspace, machine_id: str, lease_id: int) -> None:
        """Re-claim our sandboxes' addresses on a (new) subnet lease."""
        for sandbox in self.list():
            key = keyspace.address(sandbox.ip)
            value = _address_record(machine_id, sandbox.name)
            ok, _ = client.transaction(
                compare=[client.transactions.version(key) == 0],
                success=[client.transactions.put(key, value, lease=lease_id)],
                failure=[],
            )
            if ok:
                log.info("re-claimed address %s of sandbox %s", sandbox.ip, sandbox.name)


def _address_record(machine_id: str, sandbox: str) -> str:
    return json.dumps({"machine_id": machine_id, "sandbox": sandbox}, sort_keys=True)


def _claim_address(
    client: Any, keyspace: Keyspace, subnet: ipaddress.IPv4Network, machine_id: str, name: str
) -> ipaddress.IPv4Address:
    """Claim the lowest free address of our subnet, on our subnet's lease."""
    delays = core_policy.TXN_CONFLICT.delays()
    subnet_key = keyspace.subnet(str(subnet))
    while True:
        value, meta = client.get(subnet_key)
        if meta is None or json.loads(value).get("machine_id") != machine_id:
            raise SandboxError(f"subnet {subnet} is no longer leased to this node")
        taken = set()
        for _value, addr_meta in client.get_prefix(keyspace.addresses, keys_only=True):
            taken.add(addr_meta.key.decode()[len(keyspace.addresses) :])
        free = [ip for ip in sandbox_addresses(subnet) if str(ip) not in taken]
        if not free:
            raise SandboxError(f"no free address left in subnet {subnet}")
        ip = free[0]
        key = keyspace.address(str(ip))
        ok, _ = client.transaction(
            compare=[
                client.transactions.version(key) == 0,
                client.transactions.mod(subnet_key) == meta.mod_revision,
            ],
            success=[
                client.transactions.put(key, _address_record(machine_id, name), lease=meta.lease_id)
            ],
            failure=[],
        )
        if ok:
            return ip
        time.sleep(next(delays))


def _release_address(client: Any, keyspace: Keyspace, ip: str, machine_id: str, name: str) -> None:
    key = keyspace.address(ip)
    client.transaction(
        compare=[client.transactions.value(key) == _address_record(machine_id, name)],
        success=[client.transactions.delete(key)],
        failure=[],
    )


def _run(*argv: str) -> None:
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=policy.SUBPROCESS_TIMEOUT, check=False
    )
    if result.returncode != 0:
        raise SandboxError(f"{' '.join(argv)}: {result.stderr.strip()}")


def _plumb(sandbox: Sandbox, subnet: ipaddress.IPv4Network, mtu: int) -> None:
    _run("ip", "netns", "add", sandbox.name)
    with netlink.iproute() as ipr:
        bridge = ipr.link_lookup(ifname=BRIDGE)[0]
        ipr.link(
            "add",
            ifname=sandbox.host_veth,
            kind="veth",
            mtu=mtu,
            peer={"ifname": SANDBOX_IFNAME, "net_ns_fd": sandbox.name, "mtu": mtu},
        )
        index = ipr.link_lookup(ifname=sandbox.host_veth)[0]
        ipr.link("set", index=index, master=bridge, state="up")
    in_namespace(sandbox.name, lambda ns: _configure_inside(ns, sandbox, subnet))


def _configure_inside(ipr: Any, sandbox: Sandbox, subnet: ipaddress.IPv4Network) -> None:
    lo = ipr.link_lookup(ifname="lo")[0]
    ipr.link("set", index=lo, state="up")
    eth = ipr.link_lookup(ifname=SANDBOX_IFNAME)[0]
    ipr.addr("add", index=eth, address=sandbox.ip, prefixlen=subnet.prefixlen)
    ipr.link("set", index=eth, state="up")
    ipr.route("add", dst="0.0.0.0/0", gateway=str(bridge_address(subnet)))


def in_namespace(name: str, work: Callable[[Any], None]) -> None:
    """Run work(IPRoute-in-namespace) on a thread that entered the named namespace."""
    errors: list[BaseException] = []

    def body() -> None:
        try:
            netlink.setns(name)  # this thread only
            with netlink.iproute() as ipr:
                work(ipr)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=body, name=f"netns-{name}")
    thread.start()
    thread.join(policy.SUBPROCESS_TIMEOUT)
    if thread.is_alive():
        raise SandboxError(f"configuring namespace {name} did not finish")
    if errors:
        raise errors[0]


def _unplumb(sandbox: Sandbox) -> None:
    with netlink.iproute() as ipr:
        for index in ipr.link_lookup(ifname=sandbox.host_veth):
            ipr.link("del", index=index)
    if netns_exists(sandbox.name):
        _run("ip", "netns", "delete", sandbox.name)
