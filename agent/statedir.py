"""The agent's state directory: small JSON files written atomically, and its lock.

```
<state-dir>/machine-id          generated machine id (when /etc/machine-id is missing)
<state-dir>/agent.lock          flock held by the running agent
<state-dir>/registration.json   {"lease": id} of the machine record, to recognise our own
                                record after a crash (agent/membership/registration.py)
<state-dir>/node.json           NodeState: which cluster and machine the agent is
<state-dir>/overlay.json        OverlayState: this node's subnet (agent/overlay/state.py)
<state-dir>/sandboxes/<name>.json   one per sandbox this node made
<state-dir>/units/<name>/       the built-in runner's units (agent/units/runners/builtin.py)
<state-dir>/subnet.env          flannel-compatible environment (when --state-dir is given)
```
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Self, cast

from vulcano.errors import VulcanoError
from vulcano.etcd import TLSFiles


class StateDirBusy(VulcanoError):
    """Another agent runs with this state directory."""


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True, indent=1) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """The file's JSON, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class StateLock:
    """An exclusive flock on <state-dir>/agent.lock, held while the agent runs."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "agent.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateDirBusy(
                f"another vulcano-agent is running with state directory {self.path.parent}"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class StateFile:
    """A dataclass kept as one JSON file in the state directory, named by ``FILE``."""

    FILE: ClassVar[str]

    @classmethod
    def path(cls, state_dir: Path) -> Path:
        return state_dir / cls.FILE

    def save(self, state_dir: Path) -> None:
        write_json(self.path(state_dir), asdict(cast(Any, self)))

    @classmethod
    def load(cls, state_dir: Path) -> Self | None:
        """The file's record; None when it is missing or not one (keys it lacks a field
        for, such as an older layout's, are ignored)."""
        data = read_json(cls.path(state_dir))
        if not isinstance(data, dict):
            return None
        known = {f.name for f in fields(cast(Any, cls))}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError:
            return None


@dataclass
class NodeState(StateFile):
    """Which cluster and machine the running agent is: what one-shot commands (sandbox)
    need to reach the same etcd, keyspace and machine id."""

    FILE: ClassVar[str] = "node.json"

    machine_id: str
    public_ip: str
    etcd_endpoints: str
    prefix: str
    # the TLS files the agent reaches etcd with ("" when its endpoints are http://)
    cacert: str = ""
    cert: str = ""
    key: str = ""

    def tls(self) -> TLSFiles | None:
        """The agent's --cacert, --cert and --key, for a one-shot command's own client."""
        if not self.cacert:
            return None
        return TLSFiles(
            Path(self.cacert),
            Path(self.cert) if self.cert else None,
            Path(self.key) if self.key else None,
        )
