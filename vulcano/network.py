"""The cluster network config and its subnet arithmetic (pure: no I/O).

Written once per cluster by `vulcano-agent network init`, read by every node's overlay;
in the shared core because the provisioning container is to write it as well.

Stored at keyspace.network_config as JSON::

    {"network": "10.244.0.0/16", "subnet_len": 24, "subnet_min": "10.244.1.0",
     "subnet_max": "10.244.255.0", "vni": 1, "port": 8472}

As in flannel, the first subnet of the network is not handed out by default (SubnetMin is
the second one). Inside a node's subnet, .0 is the VXLAN device's address (the gateway
peers route to), .1 the bridge, and sandboxes get .2 upwards.
"""

from __future__ import annotations

import ipaddress
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from vulcano.errors import VulcanoError

DEFAULT_VNI = 1
DEFAULT_PORT = 8472  # the Linux kernel's (and flannel's) VXLAN port
MAX_SUBNET_LEN = 28  # leaves 12 sandbox addresses per node; anything smaller is useless
BACKEND_TYPE = "vxlan"
# 10.244.0.0/16 would not fit in one of these; refusing them keeps the overlay routable.
_RESERVED = [
    ipaddress.IPv4Network("0.0.0.0/8"),
    ipaddress.IPv4Network("127.0.0.0/8"),
    ipaddress.IPv4Network("169.254.0.0/16"),
    ipaddress.IPv4Network("224.0.0.0/4"),
    ipaddress.IPv4Network("240.0.0.0/4"),
]


class NetworkConfigError(VulcanoError, ValueError):
    """A network config we refuse; says which field and why."""


class SubnetExhausted(VulcanoError):
    """Every subnet of the network is leased."""


@dataclass(frozen=True)
class NetworkConfig:
    """The cluster network and how it is cut into per-node subnets."""

    network: ipaddress.IPv4Network
    subnet_len: int
    subnet_min: ipaddress.IPv4Address
    subnet_max: ipaddress.IPv4Address
    vni: int = DEFAULT_VNI
    port: int = DEFAULT_PORT

    @property
    def subnet_count(self) -> int:
        size = 1 << (32 - self.subnet_len)
        return (int(self.subnet_max) - int(self.subnet_min)) // size + 1

    def subnets(self) -> Iterator[ipaddress.IPv4Network]:
        """Every subnet that may be leased, lowest first."""
        size = 1 << (32 - self.subnet_len)
        for base in range(int(self.subnet_min), int(self.subnet_max) + 1, size):
            yield ipaddress.IPv4Network((base, self.subnet_len))

    def contains_subnet(self, subnet: ipaddress.IPv4Network) -> bool:
        return (
            subnet.prefixlen == self.subnet_len
            and subnet.subnet_of(self.network)
            and int(self.subnet_min) <= int(subnet.network_address) <= int(self.subnet_max)
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "network": str(self.network),
                "subnet_len": self.subnet_len,
                "subnet_min": str(self.subnet_min),
                "subnet_max": str(self.subnet_max),
                "vni": self.vni,
                "port": self.port,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> NetworkConfig:
        try:
            data = json.loads(raw)
        except ValueError:
            raise NetworkConfigError("network config in etcd is not JSON") from None
        if not isinstance(data, dict):
            raise NetworkConfigError("network config in etcd is not a JSON object")
        return parse(data)


def parse(data: dict[str, Any]) -> NetworkConfig:
    """Validate a config's fields; NetworkConfigError names the first bad one."""
    unknown = set(data) - {"network", "subnet_len", "subnet_min", "subnet_max", "vni", "port"}
    if unknown:
        raise NetworkConfigError(f"unknown network config field(s): {', '.join(sorted(unknown))}")
    if "network" not in data:
        raise NetworkConfigError("network: missing (a CIDR such as 10.244.0.0/16)")
    try:
        network = ipaddress.IPv4Network(str(data["network"]), strict=False)
    except ValueError:
        raise NetworkConfigError(f"network: {data['network']!r} is not an IPv4 CIDR") from None
    if str(network) != str(data["network"]).strip():
        raise NetworkConfigError(
            f"network: {data['network']!r} has host bits set (did you mean {network}?)"
        )
    for reserved in _RESERVED:
        if network.overlaps(reserved):
            raise NetworkConfigError(f"network: {network} overlaps reserved range {reserved}")
    subnet_len = _int_field(data, "subnet_len", 24)
    if subnet_len <= network.prefixlen:
        raise NetworkConfigError(
            f"subnet_len: {subnet_len} must be longer than the network's /{network.prefixlen}, "
            "or there is no subnet to hand out"
        )
    if subnet_len > MAX_SUBNET_LEN:
        raise NetworkConfigError(
            f"subnet_len: /{subnet_len} is too small for a node (at most /{MAX_SUBNET_LEN})"
        )
    size = 1 << (32 - subnet_len)
    first = int(network.network_address)
    last = int(network.broadcast_address) - size + 1
    default_min = first + size if last > first else first
    subnet_min = _subnet_bound(data, "subnet_min", default_min, network, size)
    subnet_max = _subnet_bound(data, "subnet_max", last, network, size)
    if int(subnet_min) > int(subnet_max):
        raise NetworkConfigError(f"subnet_min: {subnet_min} is above subnet_max {subnet_max}")
    vni = _int_field(data, "vni", DEFAULT_VNI)
    if not 1 <= vni <= 0xFFFFFF:
        raise NetworkConfigError(f"vni: {vni} must be between 1 and 16777215")
    port = _int_field(data, "port", DEFAULT_PORT)
    if not 1 <= port <= 65535:
        raise NetworkConfigError(f"port: {port} must be between 1 and 65535")
    return NetworkConfig(network, subnet_len, subnet_min, subnet_max, vni, port)


def _int_field(data: dict[str, Any], name: str, default: int) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise NetworkConfigError(f"{name}: {value!r} is not a whole number")
    try:
        return int(value)
    except ValueError:
        raise NetworkConfigError(f"{name}: {value!r} is not a whole number") from None


def _subnet_bound(
    data: dict[str, Any], name: str, default: int, network: ipaddress.IPv4Network, size: int
) -> ipaddress.IPv4Address:
    if name not in data or data[name] in (None, ""):
        return ipaddress.IPv4Address(default)
    try:
        addr = ipaddress.IPv4Address(str(data[name]))
    except ValueError:
        raise NetworkConfigError(f"{name}: {data[name]!r} is not an IPv4 address") from None
    if addr not in network:
        raise NetworkConfigError(f"{name}: {addr} is outside the network {network}")
    if int(addr) % size:
        raise NetworkConfigError(f"{name}: {addr} is not the first address of a subnet")
    return addr


def check_overlap(config: NetworkConfig, underlay: Iterable[str]) -> None:
    """Refuse a network that contains an underlay address (a node's IP, an etcd host)."""
    for raw in underlay:
        try:
            addr = ipaddress.ip_address(raw)
        except ValueError:
            continue
        if addr.version == 4 and addr in config.network:
            raise NetworkConfigError(
                f"network: {config.network} overlaps the underlay address {addr}; "
                "pick a range your hosts do not use"
            )


def pick_subnet(
    config: NetworkConfig, taken: set[ipaddress.IPv4Network], rng: random.Random | None = None
) -> ipaddress.IPv4Network:
    """A random free subnet (random, so racing nodes rarely try the same one)."""
    free = [s for s in config.subnets() if s not in taken]
    if not free:
        raise SubnetExhausted(
            f"all {config.subnet_count} /{config.subnet_len} subnets of {config.network} "
            "are leased: use a larger network or a longer subnet_len"
        )
    return (rng or random.Random()).choice(free)  # noqa: S311 - spreading, not secrecy


def vtep_address(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """The VXLAN device's address in a subnet: the gateway peers route that subnet via."""
    return subnet.network_address


def bridge_address(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    return subnet.network_address + 1


def sandbox_addresses(subnet: ipaddress.IPv4Network) -> Iterator[ipaddress.IPv4Address]:
    """Addresses sandboxes may take, lowest first."""
    for host in range(int(subnet.network_address) + 2, int(subnet.broadcast_address)):
        yield ipaddress.IPv4Address(host)
