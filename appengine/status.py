"""An install's status page: its cluster's machines, units and balancers as last reported,
and history.

Reached with the install's read (view) token, like the permalink, at `/status/<token>`.
How the cluster stands is computed when the page is read, from the latest summary's
``at`` and ``interval``: reporting, late, or unreachable after `UNREACHABLE_INTERVALS`
intervals without a heartbeat. Charts are SVG drawn by the template (appengine.charts).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, render_template, request

from appengine import heartbeat_models, policy
from appengine.charts import Chart, chart
from appengine.heartbeat_rings import METRICS, TIERS, Tier
from appengine.installs import usable
from appengine.models import Install
from vulcano.heartbeat import (
    BalancerSummary,
    ClusterSummary,
    MachineHealth,
    MachineSummary,
    UnitSummary,
)

bp = Blueprint("status", __name__)

_TITLES = {
    "machines_up": "Machines up",
    "units_running": "Units running",
    "load": "Mean load (1 min)",
    "cpu": "Mean CPU %",
}


@dataclass(frozen=True)
class Standing:
    """How a cluster stands at read time, from its latest summary."""

    state: str  # "reporting", "late", "unreachable", or "never" (no heartbeat yet)
    age: float | None  # seconds since the latest summary's ``at``
    summary: ClusterSummary | None
    counts: dict[str, int]  # machines per MachineHealth value
    machines: tuple[MachineSummary, ...]  # up, late and down ones
    decommissioned: tuple[MachineSummary, ...]
    units: tuple[UnitSummary, ...]
    unit_counts: dict[str, int]  # units per "active" word
    balancers: tuple[BalancerSummary, ...] = ()  # stale ones first


def standing(summary: ClusterSummary | None, now: float) -> Standing:
    """Where ``summary`` leaves its cluster at ``now``."""
    if summary is None:
        return Standing("never", None, None, {}, (), (), (), {})
    age = max(0.0, now - summary.at)
    if age > policy.UNREACHABLE_INTERVALS * summary.interval:
        state = "unreachable"
    elif age > policy.LATE_INTERVALS * summary.interval:
        state = "late"
    else:
        state = "reporting"
    counts = Counter(m.health.value for m in summary.machines)
    active = [m for m in summary.machines if m.health is not MachineHealth.DECOMMISSIONED]
    gone = [m for m in summary.machines if m.health is MachineHealth.DECOMMISSIONED]
    order = {h: i for i, h in enumerate(MachineHealth)}
    active.sort(key=lambda m: (order[m.health], m.hostname, m.machine_id))
    return Standing(
        state=state,
        age=age,
        summary=summary,
        counts={h.value: counts.get(h.value, 0) for h in MachineHealth},
        machines=tuple(active),
        decommissioned=tuple(sorted(gone, key=lambda m: (m.hostname, m.machine_id))),
        units=tuple(sorted(summary.units, key=lambda u: u.name)),
        unit_counts=dict(Counter(u.active for u in summary.units)),
        balancers=tuple(
            sorted(summary.balancers, key=lambda b: (b.status != "stale", b.name, b.machine_id))
        ),
    )


def age_text(seconds: float | None) -> str:
    """``seconds`` as a person reads an age: 42 s, 5 min, 3 h 20 min, 2 d 4 h."""
    if seconds is None:
        return "never"
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _tier(name: str | None) -> Tier:
    return next((t for t in TIERS if t.name == name), TIERS[0])


@bp.get("/status/<token>")
def show(token: str) -> Any:
    """The status page of the install whose read token is ``token``."""
    install: Install = usable(Install.get_by_read_token(token))
    entity = heartbeat_models.latest(install.key)
    now = time.time()
    tier = _tier(request.args.get("range"))
    charts: list[Chart] = []
    if entity is not None:
        ring = entity.history()[TIERS.index(tier)]
        rows = ring.rows(now)
        charts = [
            chart(metric, _TITLES[metric], i, rows, tier, now) for i, metric in enumerate(METRICS)
        ]
    hostnames = {}
    summary = entity.latest() if entity is not None else None
    if summary is not None:
        hostnames = {m.machine_id: m.hostname or m.machine_id[:8] for m in summary.machines}
    return render_template(
        "status.html",
        install=install,
        standing=standing(summary, now),
        age_text=age_text,
        hostnames=hostnames,
        charts=charts,
        tiers=TIERS,
        tier=tier,
        # Query-only links: the page's own path carries the read token; no answer repeats it.
        tier_urls={t.name: "?" + urlencode({"range": t.name}) for t in TIERS},
        refresh=policy.STATUS_REFRESH,
        unreachable_after=policy.UNREACHABLE_INTERVALS,
    )
