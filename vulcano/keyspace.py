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
<prefix>units/<name>                 JSON UnitSpec {name, hash, desired, options, starts}:
                                     the unit's desired state, written by the CLI
<prefix>unit-files/<sha1>            unit file text, stored once, addressed by its hash
<prefix>schedule/<machine-id>/<name> JSON Assignment {name, hash, desired, options, starts}: the
                                     engine's placement (written only while that
                                     machine's record lives)
<prefix>unit-states/<name>/<machine> JSON UnitState {machine_id, load, active, sub, since,
                                     reason, sandbox_ip}: a runner's report, on its
                                     machine's lease (a Global unit has one per machine)
<prefix>unit-reasons/<name>          why the engine cannot place the unit (text)
<prefix>unit-journal/<name>          the last lines of the unit's output, on the machine's lease
<prefix>samples/<machine-id>         JSON MachineSample (vulcano/heartbeat.py): the machine's
                                     vitals and its units, on its lease, every interval
<prefix>endpoints/<unit>/<machine>   JSON Endpoint (vulcano/endpoints.py) {unit, machine_id,
                                     address, ports, since}: an instance that runs and passes
                                     its checks, on its machine's lease; withdrawn otherwise
<prefix>checks/<unit>/<check-name>   JSON CheckSpec added at runtime (`vulcano check add`), beside
                                     the unit file's own Check= lines; no lease, kept
<prefix>check-states/<unit>/<machine> JSON CheckStates: each check's status, on the lease
<prefix>balancers/<name>/<machine>   JSON BalancerStatus (vulcano/records.py): what it serves,
                                     whether its last render was applied, on its lease
<prefix>engine/leader                election key (lease)
<prefix>engine/restarting/<machine>  an agent stopping to restart: its units stay put a
                                     while longer (short lease of its own)
<prefix>decommissioned/<machine-id>  JSON {machine_id, at, by}: the machine was removed on
                                     purpose (`vulcano machine remove`); no lease, kept. The
                                     engine places nothing there and moves its units at once
                                     (no grace, no outage); its agent may not register again
                                     nor lease a subnet
<prefix>pki/crl                      the cluster CA's CRL (PEM), written by the provisioning
                                     container when it revokes a machine's certificates;
                                     each agent checks its signature and writes it where its
                                     etcd member reads --client-crl-file
<prefix>pki/requests/<machine-id>    a CSR (PEM) of a key the agent made itself, when its
                                     certificate is due (2/3 of its life), on its lease
<prefix>pki/issued/<machine-id>      the renewed certificate (PEM) the container signed for
                                     that request; the agent installs it and deletes both
```

Why units are laid out this way (not units/<name>/{spec,target,state}):
- the engine watches ``machines/``, ``units/``, ``schedule/`` and ``engine/restarting/``
  only, so runner state churn never wakes it; each agent watches only
  ``schedule/<its id>/``, so a scheduling event wakes one machine, not all (fleet's
  scaling fault was every node re-reading everything);
- a moving unit's old placement is deleted before its new one is written, so an agent
  coming back never finds a placement for a unit that moved; placements are not on the
  machine lease, so an agent restarting (a new lease) keeps its units (agent/units/engine.py).

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
    def samples(self) -> str:
        return f"{self.prefix}samples/"

    def sample(self, machine_id: str) -> str:
        return f"{self.samples}{machine_id}"

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
        return f"{self.units}{name}"

    @property
    def unit_files(self) -> str:
        return f"{self.prefix}unit-files/"

    def unit_file(self, digest: str) -> str:
        return f"{self.unit_files}{digest}"

    @property
    def schedule(self) -> str:
        return f"{self.prefix}schedule/"

    def machine_schedule(self, machine_id: str) -> str:
        return f"{self.schedule}{machine_id}/"

    def assignment(self, machine_id: str, name: str) -> str:
        return f"{self.schedule}{machine_id}/{name}"

    @property
    def unit_states(self) -> str:
        return f"{self.prefix}unit-states/"

    def unit_state_prefix(self, name: str) -> str:
        return f"{self.unit_states}{name}/"

    def unit_state(self, name: str, machine_id: str) -> str:
        return f"{self.unit_states}{name}/{machine_id}"

    @property
    def unit_reasons(self) -> str:
        return f"{self.prefix}unit-reasons/"

    def unit_reason(self, name: str) -> str:
        return f"{self.unit_reasons}{name}"

    @property
    def unit_journals(self) -> str:
        return f"{self.prefix}unit-journal/"

    def unit_journal(self, name: str) -> str:
        return f"{self.unit_journals}{name}"

    # services (vulcano/endpoints.py)
    @property
    def endpoints(self) -> str:
        return f"{self.prefix}endpoints/"

    def unit_endpoints(self, name: str) -> str:
        return f"{self.endpoints}{name}/"

    def endpoint(self, name: str, machine_id: str) -> str:
        return f"{self.endpoints}{name}/{machine_id}"

    @property
    def checks(self) -> str:
        return f"{self.prefix}checks/"

    def unit_checks(self, name: str) -> str:
        return f"{self.checks}{name}/"

    def check(self, name: str, check_name: str) -> str:
        return f"{self.checks}{name}/{check_name}"

    @property
    def check_states(self) -> str:
        return f"{self.prefix}check-states/"

    def check_state(self, name: str, machine_id: str) -> str:
        return f"{self.check_states}{name}/{machine_id}"

    @property
    def balancers(self) -> str:
        return f"{self.prefix}balancers/"

    def balancer(self, name: str, machine_id: str) -> str:
        return f"{self.balancers}{name}/{machine_id}"

    @property
    def engine_leader(self) -> str:
        return f"{self.prefix}engine/leader"

    @property
    def machines_restarting(self) -> str:
        return f"{self.prefix}engine/restarting/"

    def machine_restarting(self, machine_id: str) -> str:
        return f"{self.machines_restarting}{machine_id}"

    @property
    def decommissioned(self) -> str:
        return f"{self.prefix}decommissioned/"

    def machine_decommissioned(self, machine_id: str) -> str:
        return f"{self.decommissioned}{machine_id}"

    @property
    def crl(self) -> str:
        return f"{self.prefix}pki/crl"

    @property
    def certificate_requests(self) -> str:
        return f"{self.prefix}pki/requests/"

    def certificate_request(self, machine_id: str) -> str:
        return f"{self.certificate_requests}{machine_id}"

    @property
    def issued_certificates(self) -> str:
        return f"{self.prefix}pki/issued/"

    def issued_certificate(self, machine_id: str) -> str:
        return f"{self.issued_certificates}{machine_id}"
