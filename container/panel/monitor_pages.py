"""A cluster's live health: its machines up, late, down or decommissioned, with their
vitals and the age of their latest sample, and its units by state (`services.monitor`)."""

from __future__ import annotations

import time

from flask import Blueprint, render_template

from container import policy
from container.panel import connection
from container.services import monitor
from vulcano.heartbeat import MachineHealth, UnitSummary

bp = Blueprint("monitor", __name__)

# How the page orders machines and unit states: what needs a look first.
_MACHINE_ORDER = [
    MachineHealth.DOWN,
    MachineHealth.LATE,
    MachineHealth.UP,
    MachineHealth.DECOMMISSIONED,
]
_UNIT_ORDER = ["failed", "activating", "deactivating", "reloading", "active", "inactive"]


@bp.get("/clusters/<name>/health")
def index(name: str) -> str:
    """The cluster as the relay would summarize it now (the page's own interval)."""
    now = time.time()
    interval = policy.HEALTH_PAGE_INTERVAL
    summary = monitor.summarize(connection.cluster(name), name, seq=0, interval=interval, now=now)
    machines = sorted(
        summary.machines, key=lambda m: (_MACHINE_ORDER.index(m.health), m.machine_id)
    )
    by_state: dict[str, list[UnitSummary]] = {}
    for unit in summary.units:
        by_state.setdefault(unit.active, []).append(unit)
    states = sorted(by_state, key=lambda s: (_rank(s), s))
    hostnames = {m.machine_id: m.hostname for m in summary.machines}
    return render_template(
        "health.html",
        cluster_name=name,
        summary=summary,
        machines=machines,
        counts=monitor.counts(summary),
        units=[(state, by_state[state]) for state in states],
        hostnames=hostnames,
        now=now,
        interval=interval,
        grace=policy.SAMPLE_GRACE_INTERVALS,
    )


def _rank(state: str) -> int:
    return _UNIT_ORDER.index(state) if state in _UNIT_ORDER else len(_UNIT_ORDER)
