"""The overlay's own state file, <state-dir>/overlay.json: this node's subnet.

Written by the overlay each time it has leased a subnet and programmed the node; read by
a restarted overlay (to ask for the same subnet again) and by the sandbox commands (to
address sandboxes from it, with the MTU of its bridge).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from agent.statedir import read_json, write_json


@dataclass(frozen=True)
class OverlayState:
    """This node's part of the cluster network, as the overlay last programmed it."""

    network: str
    subnet: str
    mtu: int

    @classmethod
    def path(cls, state_dir: Path) -> Path:
        return state_dir / "overlay.json"

    def save(self, state_dir: Path) -> None:
        write_json(self.path(state_dir), asdict(self))

    @classmethod
    def load(cls, state_dir: Path) -> OverlayState | None:
        data = read_json(cls.path(state_dir))
        if not isinstance(data, dict):
            return None
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError:
            return None
