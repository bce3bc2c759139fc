"""What deserves an alert: the transitions between two cluster summaries, as plain data.

healthchecks' model, per machine and per unit: a notice goes out only when something
flips between healthy and not, one per flip, recovery included; never for something seen
for the first time (new → up), never for a machine decommissioned on purpose.

- A machine is *down* when its health is DOWN and *up* when UP or LATE (late is still
  inside its grace). up → down alerts, down → up is a recovery notice. DECOMMISSIONED on
  either side, or a machine missing from either summary, says nothing.
- A unit (by name; its instances on decommissioned machines left out) is *failed* when
  any instance is ``failed`` and *ok* otherwise. ok → failed alerts, failed → ok (running
  again, or stopped on purpose) is a recovery notice. A unit in only one summary says
  nothing.
- A balancer (by name and machine: subject ``<name>/<machine>``, as its etcd key) is
  *stale* when it keeps its last good configuration because the latest did not render
  or pass its server's check, and *ok* otherwise. ok → stale alerts, with the error in
  the alert's text; stale → ok is a recovery notice. A balancer in only one summary (a
  new one, one whose machine went away) says nothing.
- The cluster is *unreachable* once no summary arrived for `policy.UNREACHABLE_INTERVALS`
  of its own intervals (the sweep decides it), and *reporting* again with the next one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from appengine import policy
from vulcano.heartbeat import ClusterSummary, MachineHealth


class Change(StrEnum):
    """What happened to a subject; the first four are outages, the rest recoveries."""

    MACHINE_DOWN = "machine-down"
    UNIT_FAILED = "unit-failed"
    CLUSTER_UNREACHABLE = "cluster-unreachable"
    BALANCER_STALE = "balancer-stale"
    MACHINE_UP = "machine-up"
    UNIT_RECOVERED = "unit-recovered"
    CLUSTER_REPORTING = "cluster-reporting"
    BALANCER_RECOVERED = "balancer-recovered"

    @property
    def recovery(self) -> bool:
        return self in {
            Change.MACHINE_UP,
            Change.UNIT_RECOVERED,
            Change.CLUSTER_REPORTING,
            Change.BALANCER_RECOVERED,
        }


@dataclass(frozen=True)
class Transition:
    """One flip worth a notice: ``subject`` (a machine id, a unit name, the cluster)."""

    change: Change
    cluster: str
    subject: str
    was: str
    now: str
    at: float  # unix seconds of the summary (or sweep) that showed it
    detail: str = ""  # what the summary said of it (a stale balancer's error), or ""

    @property
    def recovery(self) -> bool:
        return self.change.recovery

    @property
    def title(self) -> str:
        if self.recovery:
            verdict = "RECOVERED"
        else:
            verdict = "STALE" if self.change is Change.BALANCER_STALE else "DOWN"
        kind = self.change.value.split("-", 1)[0]
        return f"[vulcano] {verdict}: {kind} {self.subject} of cluster {self.cluster}"

    @property
    def text(self) -> str:
        kind = self.change.value.split("-", 1)[0]
        said = f"{kind} {self.subject} of cluster {self.cluster}: {self.was} -> {self.now}"
        return f"{said} ({self.detail})" if self.detail else said

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["change"] = self.change.value
        data["recovery"] = self.recovery
        return data


def _machine_states(summary: ClusterSummary) -> dict[str, str]:
    states = {}
    for machine in summary.machines:
        if machine.health is MachineHealth.DECOMMISSIONED:
            continue
        states[machine.machine_id] = "down" if machine.health is MachineHealth.DOWN else "up"
    return states


def _unit_states(summary: ClusterSummary) -> dict[str, str]:
    retired = {m.machine_id for m in summary.machines if m.health is MachineHealth.DECOMMISSIONED}
    states: dict[str, str] = {}
    for unit in summary.units:
        if unit.machine_id and unit.machine_id in retired:
            continue
        failed = unit.active == "failed"
        states[unit.name] = "failed" if failed or states.get(unit.name) == "failed" else "ok"
    return states


def _balancer_states(summary: ClusterSummary) -> dict[str, tuple[str, str]]:
    """Each balancer's status and error, by ``<name>/<machine>``."""
    return {f"{b.name}/{b.machine_id}": (b.status, b.error) for b in summary.balancers}


def transitions(previous: ClusterSummary | None, current: ClusterSummary) -> list[Transition]:
    """The machine, unit and balancer flips from ``previous`` to ``current``, in that
    order, each kind sorted by subject."""
    if previous is None:
        return []
    found = []
    before, after = _machine_states(previous), _machine_states(current)
    for machine_id in sorted(before.keys() & after.keys()):
        was, now = before[machine_id], after[machine_id]
        if was != now:
            change = Change.MACHINE_DOWN if now == "down" else Change.MACHINE_UP
            found.append(Transition(change, current.cluster, machine_id, was, now, current.at))
    before, after = _unit_states(previous), _unit_states(current)
    for name in sorted(before.keys() & after.keys()):
        was, now = before[name], after[name]
        if was != now:
            change = Change.UNIT_FAILED if now == "failed" else Change.UNIT_RECOVERED
            found.append(Transition(change, current.cluster, name, was, now, current.at))
    earlier, later = _balancer_states(previous), _balancer_states(current)
    for subject in sorted(earlier.keys() & later.keys()):
        (was, _), (now, error) = earlier[subject], later[subject]
        if was != now:
            stale = now == "stale"
            change = Change.BALANCER_STALE if stale else Change.BALANCER_RECOVERED
            detail = error if stale else ""
            found.append(Transition(change, current.cluster, subject, was, now, current.at, detail))
    return found


def is_unreachable(last_at: float, interval: float, now: float) -> bool:
    """True when no summary came for `policy.UNREACHABLE_INTERVALS` intervals after ``last_at``."""
    return now - last_at > policy.UNREACHABLE_INTERVALS * interval


def reachability(
    cluster: str, was_unreachable: bool, unreachable: bool, at: float
) -> list[Transition]:
    """The cluster's own flip, if any: reporting → unreachable, or back."""
    if was_unreachable == unreachable:
        return []
    if unreachable:
        return [
            Transition(Change.CLUSTER_UNREACHABLE, cluster, cluster, "reporting", "unreachable", at)
        ]
    return [Transition(Change.CLUSTER_REPORTING, cluster, cluster, "unreachable", "reporting", at)]
