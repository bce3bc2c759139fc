"""Waiting for units to reach a desired state, reporting progress as it comes.

fleetctl's `start` polls until its units are launched; so do `load`, `stop` and
`unload` here, unless told not to block. Progress goes to a callback, so the CLI can
print it and the panel can show it: a note each time a unit's standing changes, and one
when it gets there. A unit that fails stops the wait (UnitFailed), so does one the engine
says no machine can take (UnitUnplaceable, with its reason: fleetctl's `start` hung on
it forever), and so does the timeout (WaitTimedOut); the cluster keeps trying each time.

`start` tries a failed unit again (unlike fleet, where it stayed failed): the failure
reports seen before the start (``failures_now``) do not end its wait, a new one does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from container.services.cluster import Cluster
from container.services.errors import UnitFailed, UnitUnplaceable, WaitTimedOut
from container.services.machines import by_id
from container.services.states import Standing, global_machines, unit_standing
from vulcano import policy
from vulcano.records import DesiredState, Machine, UnitSpec, UnitState


@dataclass(frozen=True)
class Progress:
    """A unit reached ``desired`` (``reached``), or stands somewhere new (``note``)."""

    unit: str
    desired: DesiredState
    reached: bool
    note: str
    machine_id: str | None = None  # where it got: the (first) machine that has it
    machine: Machine | None = None  # that machine's record, while it is announced


OnProgress = Callable[[Progress], None]


def _ignore(_: Progress) -> None:
    pass


Failures = dict[str, set[UnitState]]


def _reports(cluster: Cluster) -> dict[str, list[UnitState]]:
    with cluster.registry() as registry:
        states = registry.machine_states()
    reports: dict[str, list[UnitState]] = {}
    for report in states:
        reports.setdefault(report.name, []).append(report)
    return reports


def _global_specs(cluster: Cluster, names: list[str], desired: DesiredState) -> dict[str, UnitSpec]:
    """The Global units among ``names`` (they must reach every matching machine)."""
    if desired == DesiredState.INACTIVE:
        return {}
    with cluster.registry() as registry:
        if len(names) > 8:
            specs = registry.specs()
            found = {n: specs[n] for n in names if n in specs}
        else:
            found = {n: s for n in names if (s := registry.spec(n)) is not None}
    return {n: s for n, s in found.items() if s.options.global_}


def _expected(cluster: Cluster, globals_: dict[str, UnitSpec]) -> dict[str, list[str]]:
    """Global unit → every live machine matching it, read now from machines/."""
    if not globals_:
        return {}
    with cluster.registry() as registry:
        machines = registry.machines()
        gone = registry.decommissioned()
    return {n: global_machines(s, machines, gone) for n, s in globals_.items()}


def standings(cluster: Cluster, names: Iterable[str], desired: DesiredState) -> dict[str, Standing]:
    """Where each unit stands against ``desired`` right now (one look, no waiting)."""
    names = list(names)
    expected = _expected(cluster, _global_specs(cluster, names, desired))
    reports = _reports(cluster)
    return {
        name: unit_standing(desired, reports.get(name, []), expected.get(name, ()))
        for name in names
    }


def failures_now(cluster: Cluster, names: Iterable[str]) -> Failures:
    """The failed reports of ``names`` as they stand: the ones a new start will retry."""
    reports = _reports(cluster)
    return {n: {r for r in reports.get(n, []) if r.active == "failed"} for n in names}


def _only_old_failures(reports: list[UnitState], old: set[UnitState]) -> bool:
    failed = [r for r in reports if r.active == "failed"]
    return bool(failed) and all(r in old for r in failed)


def wait_until(
    cluster: Cluster,
    names: Iterable[str],
    desired: DesiredState,
    *,
    timeout: float = policy.UNIT_COMMAND_WAIT_SECONDS,
    on_progress: OnProgress = _ignore,
    poll_interval: float = policy.UNIT_COMMAND_POLL_INTERVAL,
    retried: Failures | None = None,
) -> None:
    """Return once every unit has reached ``desired``, calling ``on_progress`` on the way.

    A Global unit has reached it once every live machine matching its MachineMetadata=
    has, read from machines/ at each look: a machine that has not reported yet is waited
    for, not skipped. ``retried``: failures from before the command (failures_now),
    which do not count.
    """
    retried = retried or {}
    deadline = time.monotonic() + timeout
    pending = list(names)
    globals_ = _global_specs(cluster, pending, desired)
    last_note: dict[str, str] = {}
    unplaced_since: dict[str, tuple[str, float]] = {}
    machines: dict[str, Machine] | None = None
    while True:
        expected = _expected(cluster, {n: s for n, s in globals_.items() if n in pending})
        reports = _reports(cluster)
        still = []
        for name in pending:
            where = unit_standing(desired, reports.get(name, []), expected.get(name, ()))
            if where.failed and _only_old_failures(reports.get(name, []), retried.get(name, set())):
                where = Standing(False, f"starting again ({where.note})", where.machine_id)
            if where.reached:
                if machines is None:
                    with cluster.registry() as registry:
                        machines = by_id(registry.machines())
                machine = machines.get(where.machine_id) if where.machine_id else None
                on_progress(Progress(name, desired, True, where.note, where.machine_id, machine))
            elif where.failed:
                raise UnitFailed(f"unit {name} {where.note}")
            elif where.unplaced and _settled(unplaced_since, name, where.note):
                raise UnitUnplaceable(
                    f"unit {name} cannot be placed: {where.note} (it stays {desired}; the "
                    "engine places it once a machine fits)"
                )
            else:
                if not where.unplaced:
                    unplaced_since.pop(name, None)
                if last_note.get(name) != where.note:
                    on_progress(Progress(name, desired, False, where.note, where.machine_id))
                    last_note[name] = where.note
                still.append(name)
        pending = still
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise WaitTimedOut(
                f"timed out after {timeout:.0f}s waiting for {', '.join(pending[:5])} "
                f"to be {desired} (the cluster keeps trying; see `vulcano status`)"
            )
        time.sleep(poll_interval)


def _settled(since: dict[str, tuple[str, float]], name: str, note: str) -> bool:
    """The engine's reason ``note`` for ``name`` has stood UNIT_UNPLACEABLE_SETTLE."""
    now = time.monotonic()
    seen = since.get(name)
    if seen is None or seen[0] != note:
        since[name] = seen = (note, now)
    return now - seen[1] >= policy.UNIT_UNPLACEABLE_SETTLE
