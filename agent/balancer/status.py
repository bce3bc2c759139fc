"""The balancer's status record, ``balancers/<name>/<machine>`` (on its own lease)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

OK = "ok"
STALE = "stale"  # the last change was not applied; the last good configuration is live


@dataclass
class BalancerStatus:
    name: str
    machine_id: str
    selector: str
    kind: str
    listen: str
    status: str = OK
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
