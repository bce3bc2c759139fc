"""A cluster's health: its machines' samples and units folded into one `ClusterSummary`.

What the relay sends to the hosted installer every interval and what the panel's live
view shows. A machine stands (vulcano.heartbeat.MachineHealth):

- **up** while its latest sample is at most one ``interval`` old (a machine whose agent
  publishes no samples yet counts by its record's lease refreshes, `inventory`);
- **late** while that is at most `policy.SAMPLE_GRACE_INTERVALS` intervals old, and while
  its agent announced a restart (``engine/restarting/``: its record and sample are away
  for the seconds a restart takes);
- **down** past that, or when its record and sample are gone but it still holds what a
  machine leaves behind: an overlay subnet, placements, or a place in the ``previous``
  summary (kept `policy.DOWN_MACHINE_KEPT` after it was last seen);
- **decommissioned** once removed on purpose (``decommissioned/<id>``): never an outage.

Each balancer (``balancers/<name>/<machine>``, vulcano.records.BalancerStatus) is listed with its
status, ok or stale, its error cut short and how many backends it serves; a record that
does not parse, or names another balancer than its key, is left out and logged.

Ages are the container's clock minus the sample's ``at`` (the machine's clock); machines
should run NTP. Anything the schema cannot carry (a unit name with a systemd escape, a
foreign key) is left out, so the installer always takes the summary.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from container import policy
from container.services import inventory
from container.services.cluster import Cluster
from vulcano.heartbeat import (
    MAX_BALANCERS,
    MAX_MACHINES,
    MAX_SUMMARY_BYTES,
    MAX_UNITS,
    BalancerSummary,
    ClusterSummary,
    HeartbeatError,
    MachineHealth,
    MachineSample,
    MachineSummary,
    UnitSummary,
    cut_error,
)
from vulcano.records import BalancerStatus, UnitState
from vulcano.registry import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterView:
    """What the cluster's etcd says now, as `summarize` folds it (read by `look`)."""

    samples: dict[str, MachineSample] = field(default_factory=dict)
    machines: list[inventory.MachineRow] = field(default_factory=list)
    placed: set[str] = field(default_factory=set)  # machines holding placements
    decommissioned: set[str] = field(default_factory=set)
    restarting: set[str] = field(default_factory=set)  # agents that announced a restart
    states: list[UnitState] = field(default_factory=list)
    balancers: list[BalancerSummary] = field(default_factory=list)


def health(
    age: float, interval: float, grace: int = policy.SAMPLE_GRACE_INTERVALS
) -> MachineHealth:
    """How a machine stands whose latest sign of life is ``age`` seconds old."""
    if age <= interval:
        return MachineHealth.UP
    if age <= grace * interval:
        return MachineHealth.LATE
    return MachineHealth.DOWN


def read_samples(cluster: Cluster) -> dict[str, MachineSample]:
    """Every machine's latest sample, by machine id (unreadable ones left out, logged)."""
    with cluster.registry() as registry:
        return _samples(registry)


def look(cluster: Cluster) -> ClusterView:
    """Read what `fold` needs: records, samples, placements, markers, unit states."""
    rows = inventory.machine_rows(cluster)
    with cluster.registry() as registry:
        ks = registry.ks
        return ClusterView(
            samples=_samples(registry),
            machines=rows,
            placed={m for ms in registry.placements().values() for m in ms},
            decommissioned=_ids_under(registry, ks.decommissioned),
            restarting=_ids_under(registry, ks.machines_restarting),
            states=registry.machine_states(),
            balancers=_balancers(registry),
        )


def summarize(
    cluster: Cluster,
    name: str,
    *,
    seq: int,
    interval: float,
    now: float,
    previous: ClusterSummary | None = None,
) -> ClusterSummary:
    """The cluster's summary number ``seq`` at ``now`` (unix seconds).

    ``previous`` (the last summary sent) keeps a machine that vanished without a trace
    down rather than silent. Raises ClusterUnavailable when etcd does not answer.
    """
    return fold(look(cluster), name, seq=seq, interval=interval, now=now, previous=previous)


def fold(
    view: ClusterView,
    name: str,
    *,
    seq: int,
    interval: float,
    now: float,
    previous: ClusterSummary | None = None,
) -> ClusterSummary:
    """The summary of what ``view`` shows (pure)."""
    rows = {r.id: r for r in view.machines}
    earlier = {m.machine_id: m for m in previous.machines} if previous is not None else {}
    known = set(rows) | set(view.samples) | view.placed | view.decommissioned | view.restarting
    known |= {
        mid
        for mid, m in earlier.items()
        if m.health != MachineHealth.DECOMMISSIONED
        and now - m.last_seen <= policy.DOWN_MACHINE_KEPT
    }
    machines = [
        _machine(mid, view, rows.get(mid), earlier.get(mid), interval, now) for mid in sorted(known)
    ]
    units = [UnitSummary(s.name, s.machine_id or "", s.active, s.sub) for s in view.states]
    balancers = view.balancers
    if not _carried(machines, units, balancers):  # someone wrote what the schema cannot carry
        machines = [m for m in machines if _carried(machines=[m])]
        units = [u for u in units if _carried(units=[u])]
        balancers = [b for b in balancers if _carried(balancers=[b])]
    summary = ClusterSummary(name, seq, now, interval, machines, units, balancers=balancers)
    return _fitted(summary)


def _machine(
    mid: str,
    view: ClusterView,
    row: inventory.MachineRow | None,
    earlier: MachineSummary | None,
    interval: float,
    now: float,
) -> MachineSummary:
    sample = view.samples.get(mid)
    record = row.machine if row is not None else None
    last_seen = earlier.last_seen if earlier is not None else 0.0
    if sample is not None:
        last_seen = sample.at
        standing = health(max(0.0, now - sample.at), interval)
    elif record is not None and row is not None and row.last_seen is not None:
        last_seen = max(last_seen, row.last_seen)  # an agent without samples: its lease
        standing = health(max(0.0, now - row.last_seen), interval)
    else:
        standing = MachineHealth.DOWN
    if mid in view.restarting and standing == MachineHealth.DOWN:
        standing = MachineHealth.LATE  # its record and sample are back in a few seconds
    if mid in view.decommissioned:
        standing = MachineHealth.DECOMMISSIONED
    hostname = sample.hostname if sample else (record.hostname if record else "")
    public_ip = sample.public_ip if sample else (record.public_ip if record else "")
    if not hostname and earlier is not None:
        hostname, public_ip = earlier.hostname, earlier.public_ip
    return MachineSummary(
        machine_id=mid,
        health=standing,
        last_seen=last_seen,
        hostname=hostname,
        public_ip=public_ip,
        load1=sample.load1 if sample else 0.0,
        cpu_percent=sample.cpu_percent if sample else 0.0,
        mem_percent=_percent(sample.mem_used, sample.mem_total) if sample else 0.0,
        disk_percent=_percent(sample.disk_used, sample.disk_total) if sample else 0.0,
    )


def _percent(used: int, total: int) -> float:
    return round(min(100.0, 100.0 * used / total), 1) if total > 0 else 0.0


def _carried(
    machines: Iterable[MachineSummary] = (),
    units: Iterable[UnitSummary] = (),
    balancers: Iterable[BalancerSummary] = (),
) -> bool:
    """Whether the installer's parser takes these (the schema's own checks, not a copy).

    Past the size limits it cannot tell: False, so the caller looks at each one alone.
    """
    probe = ClusterSummary(
        "probe", 0, 1e9, 1.0, list(machines), list(units), balancers=list(balancers)
    )
    try:
        ClusterSummary.from_json(probe.to_json())
    except HeartbeatError as exc:
        log.debug("left out of the summary: %s", exc)
        return False
    return True


def _fitted(summary: ClusterSummary) -> ClusterSummary:
    """The summary within the installer's limits: past them, units that run are left out
    first (then the rest, by name), machines past MAX_MACHINES, and balancers past
    MAX_BALANCERS or past what the bytes allow once the units are gone (stale ones kept
    first)."""
    machines = summary.machines[:MAX_MACHINES]
    balancers = sorted(summary.balancers, key=lambda b: (b.status != "stale", b.name))
    balancers = balancers[:MAX_BALANCERS]
    units = sorted(summary.units, key=lambda u: (u.active == "active", u.name))[:MAX_UNITS]
    keep = len(units)
    fitted = _with(summary, machines, units, balancers)
    while len(fitted.to_json().encode()) > MAX_SUMMARY_BYTES and keep > 0:
        keep //= 2
        fitted = _with(summary, machines, units[:keep], balancers)
    kept = len(balancers)
    while len(fitted.to_json().encode()) > MAX_SUMMARY_BYTES and kept > 0:
        kept //= 2
        fitted = _with(summary, machines, [], balancers[:kept])
    if (len(fitted.machines), len(fitted.units), len(fitted.balancers)) != (
        len(summary.machines),
        len(summary.units),
        len(summary.balancers),
    ):
        log.warning(
            "summary of %s cut to %d of %d machines, %d of %d units and %d of %d balancers "
            "(the installer's limits)",
            summary.cluster,
            len(fitted.machines),
            len(summary.machines),
            len(fitted.units),
            len(summary.units),
            len(fitted.balancers),
            len(summary.balancers),
        )
    return fitted


def _with(
    summary: ClusterSummary,
    machines: list[MachineSummary],
    units: list[UnitSummary],
    balancers: list[BalancerSummary],
) -> ClusterSummary:
    return replace(
        summary,
        machines=machines,
        units=sorted(units, key=lambda u: (u.name, u.machine_id)),
        balancers=sorted(balancers, key=lambda b: (b.name, b.machine_id)),
    )


def _samples(registry: Registry) -> dict[str, MachineSample]:
    out: dict[str, MachineSample] = {}
    plen = len(registry.ks.samples)
    for value, meta in registry.client.get_prefix(registry.ks.samples):
        key = meta.key.decode()[plen:]
        try:
            sample = MachineSample.from_json(value)
        except HeartbeatError as exc:
            log.warning("sample %s unreadable: %s", key, exc)
            continue
        if sample.machine_id == key:
            out[key] = sample
    return out


def _balancers(registry: Registry) -> list[BalancerSummary]:
    out: list[BalancerSummary] = []
    plen = len(registry.ks.balancers)
    for value, meta in registry.client.get_prefix(registry.ks.balancers):
        key = meta.key.decode()[plen:]
        try:
            record = BalancerStatus.from_json(value)
        except (ValueError, TypeError, AttributeError) as exc:
            log.warning("balancer %s unreadable: %s", key, exc)
            continue
        if key != f"{record.name}/{record.machine_id}":
            log.warning("balancer %s: its record names %s/%s", key, record.name, record.machine_id)
            continue
        out.append(_balancer(record))
    return out


def _balancer(record: BalancerStatus) -> BalancerSummary:
    count = len(record.backends) if isinstance(record.backends, list) else 0
    error = cut_error(record.error) if isinstance(record.error, str) else ""
    return BalancerSummary(
        str(record.name), str(record.machine_id), str(record.status), error, count
    )


def _ids_under(registry: Registry, prefix: str) -> set[str]:
    plen = len(prefix)
    return {meta.key.decode()[plen:] for _, meta in registry.client.get_prefix(prefix)}


def counts(summary: ClusterSummary) -> Mapping[MachineHealth, int]:
    """How many machines stand each way (every standing present, 0 or more)."""
    found = dict.fromkeys(MachineHealth, 0)
    for m in summary.machines:
        found[m.health] += 1
    return found
