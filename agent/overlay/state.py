"""The overlay's own state file, <state-dir>/overlay.json: this node's subnet.

Written by the overlay each time it has leased a subnet and programmed the node; read by
a restarted overlay (to ask for the same subnet again) and by the sandbox commands (to
address sandboxes from it, with the MTU of its bridge).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from agent.statedir import StateFile


@dataclass(frozen=True)
class OverlayState(StateFile):
    """This node's part of the cluster network, as the overlay last programmed it."""

    FILE: ClassVar[str] = "overlay.json"

    network: str
    subnet: str
    mtu: int
