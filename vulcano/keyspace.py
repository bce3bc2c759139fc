"""The cluster's etcd keyspace: the one documented schema every component uses.

```
<prefix>machines/<machine-id>        JSON Machine {id, hostname, public_ip, metadata, version},
                                     on the agent's lease (TTL, default 10 s)
<prefix>machine-ips/<public-ip>      machine-id holding that public IP, same lease; both keys
                                     are created in one transaction only if neither exists
<prefix>network/config               JSON NetworkConfig {network, subnet_len, subnet_min,
                                     subnet_max, vni, port}
<prefix>network/subnets/<a.b.c.d-n>  JSON SubnetLease {machine_id, public_ip, backend_type,
                                     vtep_mac}, on a long lease (default 24 h), renewed
<prefix>network/addresses/<ip>       JSON {machine_id, sandbox}, one per sandbox address, on
                                     its node's subnet lease (so it goes with the subnet)
<prefix>units/<name>/spec            JSON {hash, desired, options}, the unit's desired state
<prefix>units/<name>/target          machine-id chosen by the engine
<prefix>units/<name>/state           JSON {machine_id, load, active, sub, since, reason}
<prefix>unit-files/<sha1>            unit file text, stored once, addressed by its hash
<prefix>engine/leader                election key (lease)
```

CIDRs in keys use '-' for '/' (as flannel does) so a key is one path segment.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "/vulcano/"


def cidr_to_segment(cidr: str) -> str:
    return cidr.replace("/", "-")


def segment_to_cidr(segment: str) -> str:
    return segment.replace("-", "/")


@dataclass(frozen=True)
class Keyspace:
    """Key names under one cluster prefix."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix.startswith("/") or not self.prefix.endswith("/"):
            raise ValueError(f"keyspace prefix must start and end with '/': {self.prefix!r}")

    # membership
    @property
    def machines(self) -> str:
        return f"{self.prefix}machines/"

    def machine(self, machine_id: str) -> str:
        return f"{self.machines}{machine_id}"

    @property
    def machine_ips(self) -> str:
        return f"{self.prefix}machine-ips/"

    def machine_ip(self, public_ip: str) -> str:
        return f"{self.machine_ips}{public_ip}"

    # overlay
    @property
    def network_config(self) -> str:
        return f"{self.prefix}network/config"

    @property
    def subnets(self) -> str:
        return f"{self.prefix}network/subnets/"

    def subnet(self, cidr: str) -> str:
        return f"{self.subnets}{cidr_to_segment(cidr)}"

    @property
    def addresses(self) -> str:
        return f"{self.prefix}network/addresses/"

    def address(self, ip: str) -> str:
        return f"{self.addresses}{ip}"

    # units
    @property
    def units(self) -> str:
        return f"{self.prefix}units/"

    def unit_spec(self, name: str) -> str:
        return f"{self.units}{name}/spec"

    def unit_target(self, name: str) -> str:
        return f"{self.units}{name}/target"

    def unit_state(self, name: str) -> str:
        return f"{self.units}{name}/state"

    @property
    def unit_files(self) -> str:
        return f"{self.prefix}unit-files/"

    def unit_file(self, digest: str) -> str:
        return f"{self.unit_files}{digest}"

    @property
    def engine_leader(self) -> str:
        return f"{self.prefix}engine/leader"
