"""Subnet leases: one per node, acquired in an etcd transaction, on a long renewed lease.

Record at keyspace.subnet(cidr), flannel's lease with our names::

    {"machine_id": "...", "public_ip": "192.0.2.5", "backend_type": "vxlan",
     "vtep_mac": "02:..."}

A decommissioned machine (keyspace.machine_decommissioned) leases no new subnet: the
claim's transaction requires that key absent (MachineDecommissioned otherwise), so an
agent still running there cannot take back the subnet `vulcano machine remove` freed.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import time
from dataclasses import dataclass, replace
from typing import Any

from vulcano import policy as core_policy
from vulcano.errors import MachineDecommissioned, VulcanoError
from vulcano.keyspace import Keyspace, segment_to_cidr
from vulcano.network import BACKEND_TYPE, NetworkConfig, pick_subnet

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 1024  # four short fields
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
_MACHINE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_BACKEND = re.compile(r"[a-z0-9-]{1,32}")


class SubnetLeaseError(VulcanoError, ValueError):
    """A subnet lease record we cannot read; names the field."""


@dataclass(frozen=True)
class SubnetLease:
    """A node's subnet: who holds it and how to reach its VXLAN endpoint."""

    subnet: ipaddress.IPv4Network
    machine_id: str
    public_ip: str
    vtep_mac: str
    backend_type: str = BACKEND_TYPE
    lease_id: int = 0  # the etcd lease the key lives on (not part of the JSON)

    def to_json(self) -> str:
        return json.dumps(
            {
                "machine_id": self.machine_id,
                "public_ip": self.public_ip,
                "backend_type": self.backend_type,
                "vtep_mac": self.vtep_mac,
            },
            sort_keys=True,
        )

    @classmethod
    def from_record(cls, subnet: str, raw: bytes | str, lease_id: int) -> SubnetLease:
        """Read a record; SubnetLeaseError names the first field that is wrong.

        Every field is checked as the data path will use it: a MAC that netlink would
        refuse, or an address given as a number, is an unreadable record, not a peer.
        """
        if len(raw) > MAX_RECORD_BYTES:
            raise SubnetLeaseError(f"subnet lease {subnet}: larger than {MAX_RECORD_BYTES} bytes")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise SubnetLeaseError(f"subnet lease {subnet}: not JSON") from None
        if not isinstance(data, dict):
            raise SubnetLeaseError(f"subnet lease {subnet}: not a JSON object")
        try:
            network = ipaddress.IPv4Network(subnet)
        except ValueError:
            raise SubnetLeaseError(f"subnet lease {subnet!r}: key is not an IPv4 CIDR") from None

        def field(name: str, pattern: re.Pattern[str], default: str | None = None) -> str:
            value = data.get(name, default)
            if not isinstance(value, str) or not pattern.fullmatch(value):
                raise SubnetLeaseError(f"subnet lease {network}: {name} {value!r} is not valid")
            return value

        ip = data.get("public_ip")
        try:
            public_ip = str(ipaddress.IPv4Address(ip if isinstance(ip, str) else "-"))
        except ValueError:
            raise SubnetLeaseError(
                f"subnet lease {network}: public_ip {ip!r} is not an IPv4 address"
            ) from None
        mac = data.get("vtep_mac", "")
        if isinstance(mac, str):
            mac = mac.lower()
            data["vtep_mac"] = mac
        return cls(
            subnet=network,
            machine_id=field("machine_id", _MACHINE_ID),
            public_ip=public_ip,
            vtep_mac="" if mac == "" else field("vtep_mac", _MAC),
            backend_type=field("backend_type", _BACKEND, BACKEND_TYPE),
            lease_id=lease_id,
        )


def read_record(keyspace: Keyspace, key: str, value: bytes, lease_id: int) -> SubnetLease | None:
    """The lease a record under keyspace.subnets holds; None (logged) when unreadable."""
    segment = key[len(keyspace.subnets) :]
    try:
        return SubnetLease.from_record(segment_to_cidr(segment), value, lease_id)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable subnet lease %s: %s", key, exc)
        return None


def list_leases(client: Any, keyspace: Keyspace) -> list[SubnetLease]:
    """Every readable subnet lease (unreadable records are logged and skipped)."""
    leases = []
    for value, meta in client.get_prefix(keyspace.subnets):
        lease = read_record(keyspace, meta.key.decode(), value, meta.lease_id)
        if lease is not None:
            leases.append(lease)
    return leases


def acquire(
    client: Any,
    keyspace: Keyspace,
    config: NetworkConfig,
    wanted: SubnetLease,
    ttl: int,
    preferred: ipaddress.IPv4Network | None = None,
) -> tuple[SubnetLease, bool]:
    """Our subnet lease: the one we already hold, else `preferred` if free, else a free one.

    `wanted` carries machine id, public IP and VTEP MAC (its subnet is ignored). Returns
    the lease and whether it was newly created. Raises SubnetExhausted when nothing is
    free; retries transactions that lose a race.
    """
    delays = core_policy.TXN_CONFLICT.delays()
    while True:
        leases = [
            lease for lease in list_leases(client, keyspace) if config.contains_subnet(lease.subnet)
        ]
        mine = [lease for lease in leases if lease.machine_id == wanted.machine_id]
        if mine:
            held = mine[0]
            current = replace(wanted, subnet=held.subnet, lease_id=held.lease_id)
            if held == current:
                log.info("keeping subnet lease %s", held.subnet)
                return held, False
            if _update(client, keyspace, current):
                log.info("updated subnet lease %s", held.subnet)
                return current, False
        else:
            taken = {lease.subnet for lease in leases}
            if (
                preferred is not None
                and config.contains_subnet(preferred)
                and preferred not in taken
            ):
                candidate = preferred
            else:
                candidate = pick_subnet(config, taken)
            lease = client.lease(ttl)
            claim = replace(wanted, subnet=candidate, lease_id=lease.id)
            key = keyspace.subnet(str(candidate))
            marker = keyspace.machine_decommissioned(wanted.machine_id)
            ok, _ = client.transaction(
                compare=[
                    client.transactions.version(key) == 0,
                    client.transactions.version(marker) == 0,
                ],
                success=[client.transactions.put(key, claim.to_json(), lease=lease.id)],
                failure=[],
            )
            if ok:
                log.info("leased subnet %s", candidate)
                return claim, True
            client.revoke_lease(lease.id)
            if client.get(marker)[1] is not None:
                raise MachineDecommissioned(
                    f"machine {wanted.machine_id} was removed from the cluster: no subnet for it"
                )
        time.sleep(next(delays))


def _update(client: Any, keyspace: Keyspace, lease: SubnetLease) -> bool:
    """Rewrite our record (new MAC or IP) on its existing lease, if it is still ours."""
    key = keyspace.subnet(str(lease.subnet))
    _value, meta = client.get(key)
    if meta is None:
        return False
    ok, _ = client.transaction(
        compare=[client.transactions.mod(key) == meta.mod_revision],
        success=[client.transactions.put(key, lease.to_json(), lease=lease.lease_id)],
        failure=[],
    )
    return bool(ok)


def still_ours(client: Any, keyspace: Keyspace, lease: SubnetLease) -> bool:
    value, meta = client.get(keyspace.subnet(str(lease.subnet)))
    if meta is None or meta.lease_id != lease.lease_id:
        return False
    try:
        return SubnetLease.from_record(str(lease.subnet), value, meta.lease_id) == lease
    except (ValueError, KeyError, TypeError):
        return False


def release(client: Any, keyspace: Keyspace, machine_id: str) -> list[SubnetLease]:
    """Give back every subnet ``machine_id`` holds (``network down``); returns them.

    Revoking the etcd lease removes the subnet record and whatever lives on that lease
    (the node's sandbox address claims) in one step; a record on no lease is deleted only
    if it is still the one read, so a subnet another node took meanwhile is left alone.
    """
    released = []
    for lease in list_leases(client, keyspace):
        if lease.machine_id != machine_id:
            continue
        if lease.lease_id:
            client.revoke_lease(lease.lease_id)
        else:
            key = keyspace.subnet(str(lease.subnet))
            t = client.transactions
            client.transaction(
                compare=[t.value(key) == lease.to_json()], success=[t.delete(key)], failure=[]
            )
        released.append(lease)
    return released
