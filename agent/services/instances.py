"""What the services know of one unit instance: as MachineUnits saw it, and as its
checks and publications stand."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.services.checkstate import CheckTracker, overall
from vulcano.endpoints import CheckStatus, ServiceOptions


@dataclass(frozen=True)
class Instance:
    """A unit loaded on this machine, as MachineUnits saw it in one pass."""

    name: str
    hash: str
    text: str
    active: bool  # its RUNNING state is ``active``
    netns: str | None = None  # its sandbox's network namespace (Sandbox=true)
    sandbox_ip: str | None = None


@dataclass
class LiveInstance:
    """A running instance: its checks' state and what was published for it."""

    instance: Instance
    options: ServiceOptions
    generation: int
    trackers: dict[str, CheckTracker] = field(default_factory=dict)
    due: dict[str, float] = field(default_factory=dict)  # monotonic
    inflight: set[str] = field(default_factory=set)
    changed: bool = True  # a status changed: write the check state at once
    dirty: bool = False  # an output or a streak changed: write within the interval
    states_at: float = 0.0  # monotonic time of the last check-state write
    endpoint: str | None = None  # the Endpoint JSON published, if any
    states: str | None = None  # the CheckStates JSON published, if any

    @property
    def status(self) -> CheckStatus:
        return overall([t.result.status for t in self.trackers.values()])


@dataclass(frozen=True)
class Publication:
    """What one pass writes for an instance (None: delete), and what was there."""

    name: str
    generation: int
    endpoint: str | None
    old_endpoint: str | None
    states: str | None
    old_states: str | None
