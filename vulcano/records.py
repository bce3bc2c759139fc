"""The cluster registry's records: one type per kind of key, as JSON in etcd.

Machines (`machines/<id>`, written by each agent on its lease), units' desired state
(`units/<name>`, written by the CLI), assignments (`schedule/<machine>/<name>`, written
by the engine) and unit states (`unit-states/<name>/<machine>`, written by the machine
that runs it). Every deployable reads and writes them through these types only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Self

from vulcano.units import FleetOptions

# fleetctl shows machine ids cut to this many characters, and MachineID= accepts them.
SHORT_ID_LENGTH = 8
# The machine record's schema version.
MACHINE_RECORD_VERSION = 1
# systemd's ActiveState values during which a unit's processes may be running.
RUNNING_STATES = frozenset({"active", "reloading", "activating", "deactivating"})


def short_id(machine_id: str) -> str:
    """A machine id as fleetctl lists it: its first SHORT_ID_LENGTH characters and '...'."""
    return machine_id[:SHORT_ID_LENGTH] + "..."


class DesiredState(StrEnum):
    """fleet's desired states; a unit moves one step at a time between them."""

    INACTIVE = "inactive"
    LOADED = "loaded"
    LAUNCHED = "launched"


@dataclass(frozen=True)
class Machine:
    """A cluster node as its agent announces it (``machines/<id>``, on its lease)."""

    id: str
    public_ip: str = ""
    hostname: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    version: int = MACHINE_RECORD_VERSION
    lease_id: int = field(default=0, compare=False)  # the etcd lease it was read on
    # The host's SSH host keys as ``type base64`` lines, published by its agent, so the
    # provisioning container pins them by machine id (no trust prompt, no known_hosts).
    ssh_host_keys: tuple[str, ...] = ()

    def to_json(self) -> str:
        record: dict[str, Any] = {
            "id": self.id,
            "hostname": self.hostname,
            "public_ip": self.public_ip,
            "metadata": self.metadata,
            "version": self.version,
        }
        if self.ssh_host_keys:
            record["ssh_host_keys"] = list(self.ssh_host_keys)
        return json.dumps(record, sort_keys=True)

    @classmethod
    def from_json(cls, raw: bytes | str, lease_id: int = 0) -> Machine:
        """Parse a record; raises ValueError, KeyError or TypeError when it is not one."""
        data: dict[str, Any] = json.loads(raw)
        metadata = data.get("metadata") or {}
        return cls(
            id=str(data["id"]),
            public_ip=str(data.get("public_ip", "")),
            hostname=str(data.get("hostname", "")),
            metadata={str(k): str(v) for k, v in dict(metadata).items()},
            version=int(data.get("version", MACHINE_RECORD_VERSION)),
            lease_id=lease_id,
            ssh_host_keys=tuple(str(k) for k in data.get("ssh_host_keys") or ()),
        )


@dataclass(frozen=True)
class _UnitOrder:
    """A unit's name, content hash, desired state and X-Fleet options, as JSON in etcd."""

    name: str
    hash: str
    desired: DesiredState = DesiredState.INACTIVE
    options: FleetOptions = field(default_factory=FleetOptions)
    starts: int = 0  # bumped by every `start`, so a failed unit is tried again

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "hash": self.hash,
                "desired": str(self.desired),
                "options": self.options.to_json(),
                "starts": self.starts,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Self:
        d = json.loads(raw)
        return cls(
            d["name"],
            d["hash"],
            DesiredState(d["desired"]),
            FleetOptions.from_json(d["options"]),
            int(d.get("starts", 0)),
        )


@dataclass(frozen=True)
class UnitSpec(_UnitOrder):
    """The cluster's desired state of one unit (keyspace ``units/<name>``)."""


@dataclass(frozen=True)
class Assignment(_UnitOrder):
    """The engine's word to one machine: run this content in this desired state."""

    @classmethod
    def of(cls, spec: UnitSpec) -> Assignment:
        return cls(spec.name, spec.hash, spec.desired, spec.options, spec.starts)


@dataclass(frozen=True)
class UnitState:
    """What a runner reports (or why the engine could not place the unit)."""

    name: str
    machine_id: str | None = None
    load: str = "not-found"
    active: str = "inactive"
    sub: str = "dead"
    since: float = 0.0
    reason: str = ""
    hash: str = ""
    sandbox_ip: str | None = None

    @property
    def running(self) -> bool:
        return self.active in RUNNING_STATES

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: bytes | str) -> UnitState:
        d = json.loads(raw)
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True)
class UnitSource:
    """A unit as the operator named it: a file's text, or just a name already in etcd."""

    name: str
    text: str | None = None


# A balancer's status (agent/balancer/), read by the provisioning container's summary.
BALANCER_OK = "ok"
BALANCER_STALE = "stale"  # the last change was not applied; the last good config is live


@dataclass
class BalancerStatus:
    name: str
    machine_id: str
    selector: str
    kind: str
    listen: str
    status: str = BALANCER_OK
    error: str = ""  # why the last change was not applied
    backends: list[str] = field(default_factory=list)  # what the live config serves
    skipped: list[str] = field(default_factory=list)  # endpoint records refused, and why
    reloads: int = 0  # graceful reloads of the server (its start not counted)
    runtime_changes: int = 0  # HAProxy slots changed through the runtime API
    renders: int = 0  # configurations applied (start, reload or runtime)
    rejected: int = 0  # configurations the server's check refused
    watch_restarts: int = 0  # lost watches, started again
    server_pid: int = 0  # the server's master process
    since: float = 0.0  # when the live configuration was applied (wall clock)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: bytes | str) -> BalancerStatus:
        d: dict[str, Any] = json.loads(raw)
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)
