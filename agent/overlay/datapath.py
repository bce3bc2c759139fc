"""The overlay's executor: the VXLAN device, the bridge, and applying reconcile plans.

It names the overlay's devices (BRIDGE, VXLAN_DEVICE); sandboxes plug into BRIDGE.

Everything goes through pyroute2 in the calling thread's network namespace. Routes the
agent adds carry their own protocol number (ROUTE_PROTO), so reading the kernel back
finds exactly ours and never touches routes someone else made.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.overlay import netlink
from agent.overlay.plan import DataPathState, FdbEntry, Neighbour, Plan, Route
from vulcano.errors import VulcanoError
from vulcano.network import NetworkConfig, bridge_address, vtep_address

log = logging.getLogger(__name__)

BRIDGE = "vulcano0"  # the node's bridge: sandboxes' gateway, routed to the VXLAN device
VXLAN_DEVICE = "vulcano.vxlan"
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
ROUTE_PROTO = 77  # rtnetlink protocol number marking the agent's routes
RT_TABLE_MAIN = 254
NUD_PERMANENT = 0x80
RTNH_F_ONLINK = 4
_IGNORED_ON_DELETE = {errno.ENOENT, errno.ESRCH, errno.ENODEV, errno.EADDRNOTAVAIL}


class DataPathError(VulcanoError):
    """The kernel refused or lacks something the overlay needs."""


@dataclass(frozen=True)
class Devices:
    vxlan_index: int
    bridge_index: int
    vtep_mac: str
    mtu: int


def vtep_mac_for(machine_id: str) -> str:
    """A stable, locally administered unicast MAC for a machine's VXLAN device."""
    raw = bytearray(hashlib.sha256(f"vulcano-vtep:{machine_id}".encode()).digest()[:6])
    raw[0] = (raw[0] & 0xFE) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


def _netlink_errno(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None


class DataPath:
    """pyroute2 operations on this namespace's overlay devices."""

    def __init__(self, ipr: Any = None) -> None:
        """Work in the calling thread's namespace, or through the given IPRoute."""
        self._own = ipr is None
        self.ipr: Any = netlink.iproute() if ipr is None else ipr

    def close(self) -> None:
        if self._own:
            self.ipr.close()

    # -- devices -----------------------------------------------------------------------
    def underlay(self, public_ip: str) -> tuple[int, int]:
        """(ifindex, MTU) of the interface that holds the public IP."""
        for addr in self.ipr.get_addr(family=socket.AF_INET):
            if addr.get("IFA_ADDRESS") == public_ip:
                index = int(addr["index"])
                link = self.ipr.get_links(index)[0]
                return index, int(link.get("IFLA_MTU"))
        raise DataPathError(f"public IP {public_ip} is not an address of this host")

    def underlay_addresses(self) -> list[str]:
        return [str(a.get("IFA_ADDRESS")) for a in self.ipr.get_addr(family=socket.AF_INET)]

    def ensure_devices(
        self, config: NetworkConfig, subnet: ipaddress.IPv4Network, public_ip: str, vtep_mac: str
    ) -> Devices:
        """Create or fix the VXLAN device and bridge; keep them when already right."""
        link_index, underlay_mtu = self.underlay(public_ip)
        mtu = underlay_mtu - VXLAN_OVERHEAD
        vx = self._ensure_vxlan(config, public_ip, link_index, vtep_mac, mtu)
        self._only_address(vx, vtep_address(subnet), 32)
        self.ipr.link("set", index=vx, state="up")
        br = self._ensure_bridge(mtu)
        self._only_address(br, bridge_address(subnet), subnet.prefixlen)
        self.ipr.link("set", index=br, state="up")
        _enable_forwarding()
        return Devices(vx, br, vtep_mac, mtu)

    def _ensure_vxlan(
        self, config: NetworkConfig, public_ip: str, link_index: int, mac: str, mtu: int
    ) -> int:
        found = self.ipr.link_lookup(ifname=VXLAN_DEVICE)
        if found:
            index = int(found[0])
            link = self.ipr.get_links(index)[0]
            info = link.get("IFLA_LINKINFO")
            data = info.get("IFLA_INFO_DATA") if info else None
            same = (
                info is not None
                and info.get("IFLA_INFO_KIND") == "vxlan"
                and data is not None
                and data.get("IFLA_VXLAN_ID") == config.vni
                and data.get("IFLA_VXLAN_PORT") == config.port
                and data.get("IFLA_VXLAN_LOCAL") == public_ip
                and data.get("IFLA_VXLAN_LINK") == link_index
                and not data.get("IFLA_VXLAN_LEARNING")
                and str(link.get("IFLA_ADDRESS")).lower() == mac
            )
            if same:
                if link.get("IFLA_MTU") != mtu:
                    self.ipr.link("set", index=index, mtu=mtu)
                return index
            log.info("recreating %s: its settings differ from the network config", VXLAN_DEVICE)
            self.ipr.link("del", index=index)
        self.ipr.link(
            "add",
            ifname=VXLAN_DEVICE,
            kind="vxlan",
            vxlan_id=config.vni,
            vxlan_port=config.port,
            vxlan_local=public_ip,
            vxlan_link=link_index,
            vxlan_learning=0,
            address=mac,
            mtu=mtu,
        )
        return int(self.ipr.link_lookup(ifname=VXLAN_DEVICE)[0])

    def _ensure_bridge(self, mtu: int) -> int:
        found = self.ipr.link_lookup(ifname=BRIDGE)
        if not found:
            self.ipr.link("add", ifname=BRIDGE, kind="bridge", mtu=mtu)
            found = self.ipr.link_lookup(ifname=BRIDGE)
        index = int(found[0])
        link = self.ipr.get_links(index)[0]
        if link.get("IFLA_MTU") != mtu:
            self.ipr.link("set", index=index, mtu=mtu)
        return index

    def _only_address(self, index: int, address: ipaddress.IPv4Address, prefixlen: int) -> None:
        present = False
        for addr in self.ipr.get_addr(family=socket.AF_INET, index=index):
            if addr.get("IFA_ADDRESS") == str(address) and addr["prefixlen"] == prefixlen:
                present = True
            else:
                self.ipr.addr(
                    "del", index=index, address=addr.get("IFA_ADDRESS"), prefixlen=addr["prefixlen"]
                )
        if not present:
            self.ipr.addr("add", index=index, address=str(address), prefixlen=prefixlen)

    def vxlan_index(self) -> int | None:
        found = self.ipr.link_lookup(ifname=VXLAN_DEVICE)
        return int(found[0]) if found else None

    def teardown(self) -> list[str]:
        """Delete the VXLAN device and the bridge (and so every overlay entry)."""
        removed = []
        for name in (VXLAN_DEVICE, BRIDGE):
            for index in self.ipr.link_lookup(ifname=name):
                self.ipr.link("del", index=index)
                removed.append(name)
        return removed

    # -- entries -----------------------------------------------------------------------
    def read_state(self, vx: int) -> DataPathState:
        """The overlay entries the kernel holds on the VXLAN device."""
        neighbours = set()
        for n in self.ipr.get_neighbours(ifindex=vx, family=socket.AF_INET):
            if n["state"] & NUD_PERMANENT and n.get("NDA_LLADDR") and n.get("NDA_DST"):
                neighbours.add(Neighbour(str(n.get("NDA_DST")), str(n.get("NDA_LLADDR")).lower()))
        fdb = set()
        for f in self.ipr.fdb("dump", ifindex=vx):
            if f["ifindex"] == vx and f.get("NDA_DST") and f.get("NDA_LLADDR"):
                fdb.add(FdbEntry(str(f.get("NDA_LLADDR")).lower(), str(f.get("NDA_DST"))))
        routes = set()
        for r in self.ipr.get_routes(family=socket.AF_INET, table=RT_TABLE_MAIN):
            if r["proto"] == ROUTE_PROTO and r.get("RTA_OIF") == vx and r.get("RTA_GATEWAY"):
                routes.add(Route(f"{r.get('RTA_DST')}/{r['dst_len']}", str(r.get("RTA_GATEWAY"))))
        return DataPathState(frozenset(neighbours), frozenset(fdb), frozenset(routes))

    def apply(self, vx: int, plan: Plan) -> None:
        """Execute a plan: removals (routes, neighbours, fdb), then additions (reverse)."""
        for route in plan.remove_routes:
            self._ignore_missing(
                self.ipr.route,
                "del",
                dst=route.dst,
                gateway=route.gateway,
                oif=vx,
                proto=ROUTE_PROTO,
                table=RT_TABLE_MAIN,
            )
        for neighbour in plan.remove_neighbours:
            self._ignore_missing(
                self.ipr.neigh, "del", dst=neighbour.ip, lladdr=neighbour.mac, ifindex=vx
            )
        for entry in plan.remove_fdb:
            self._ignore_missing(self.ipr.fdb, "del", ifindex=vx, lladdr=entry.mac, dst=entry.dst)
        for entry in plan.add_fdb:
            self.ipr.fdb("append", ifindex=vx, lladdr=entry.mac, dst=entry.dst, state=NUD_PERMANENT)
        for neighbour in plan.add_neighbours:
            self.ipr.neigh(
                "replace", dst=neighbour.ip, lladdr=neighbour.mac, ifindex=vx, state=NUD_PERMANENT
            )
        for route in plan.add_routes:
            self.ipr.route(
                "replace",
                dst=route.dst,
                gateway=route.gateway,
                oif=vx,
                flags=RTNH_F_ONLINK,
                proto=ROUTE_PROTO,
                table=RT_TABLE_MAIN,
            )

    @staticmethod
    def _ignore_missing(call: Any, *args: Any, **kwargs: Any) -> None:
        try:
            call(*args, **kwargs)
        except Exception as exc:
            if _netlink_errno(exc) not in _IGNORED_ON_DELETE:
                raise


def _enable_forwarding() -> None:
    """Route between the bridge and the VXLAN device (this namespace's sysctl)."""
    path = Path("/proc/sys/net/ipv4/ip_forward")
    if path.read_text().strip() != "1":
        path.write_text("1\n")
