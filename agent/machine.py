"""A cluster node as etcd knows it: its id and its machine record."""

from __future__ import annotations

import json
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ETC_MACHINE_ID = Path("/etc/machine-id")
RECORD_VERSION = 1


@dataclass(frozen=True)
class Machine:
    """The machine record at keyspace.machine(id), on the agent's lease."""

    id: str
    public_ip: str
    hostname: str = field(default_factory=socket.gethostname)
    metadata: dict[str, str] = field(default_factory=dict)
    version: int = RECORD_VERSION

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "hostname": self.hostname,
                "public_ip": self.public_ip,
                "metadata": self.metadata,
                "version": self.version,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Machine:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            id=str(data["id"]),
            public_ip=str(data["public_ip"]),
            hostname=str(data.get("hostname", "")),
            metadata={str(k): str(v) for k, v in dict(data.get("metadata", {})).items()},
            version=int(data.get("version", RECORD_VERSION)),
        )


def machine_id(state_dir: Path, etc_machine_id: Path = ETC_MACHINE_ID) -> str:
    """This host's id: /etc/machine-id, else one generated once and kept in the state dir."""
    try:
        value = etc_machine_id.read_text().strip()
    except OSError:
        value = ""
    if value:
        return value
    persisted = state_dir / "machine-id"
    try:
        value = persisted.read_text().strip()
    except OSError:
        value = ""
    if value:
        return value
    value = secrets.token_hex(16)
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = persisted.with_suffix(".tmp")
    tmp.write_text(value + "\n")
    os.replace(tmp, persisted)
    return value
