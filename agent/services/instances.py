"""What the services know of one unit instance: as MachineUnits saw it, and as its
checks and publications stand."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from agent.services.checkstate import CheckTracker, overall
from vulcano.endpoints import CheckStates, CheckStatus, Endpoint, ServiceOptions


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
    refused_until: float = 0.0  # monotonic: the assignment was gone, wait to try again
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


def plan(
    name: str, live: LiveInstance, machine_id: str, public_ip: str, note: str
) -> Publication | None:
    """What to write for one instance now, or None (under the services' lock)."""
    inst = live.instance
    endpoint = live.endpoint
    status = live.status
    # a check added to a published instance starts pending: only failing withdraws it
    healthy = status == CheckStatus.PASSING or (
        status == CheckStatus.PENDING and endpoint is not None
    )
    if inst.active and live.options.ports and healthy:
        if endpoint is None:
            at = inst.sandbox_ip or public_ip
            endpoint = Endpoint(name, machine_id, at, live.options.ports, time.time()).to_json()
    else:
        endpoint = None
    states = live.states
    now = time.monotonic()
    if now < live.refused_until:
        return None
    if live.trackers or note:
        interval = min((t.spec.interval for t in live.trackers.values()), default=0.0)
        if live.changed or states is None or (live.dirty and now - live.states_at >= interval):
            results = {c: t.result for c, t in sorted(live.trackers.items())}
            states = CheckStates(name, machine_id, results, note).to_json()
            live.changed = live.dirty = False  # taken in; a failed write marks it again
    else:
        states = None
    if endpoint == live.endpoint and states == live.states:
        return None
    return Publication(name, live.generation, endpoint, live.endpoint, states, live.states)
