"""The unit engine: one leader among the agents places units and writes the placements.

Leadership is an etcd key on the leader's lease (created only if absent); every write
the leader makes compares that key's create revision, so a deposed leader's late
writes fail instead of fighting the new one. The leader keeps an in-memory copy of
machines, units and placements, fed by one snapshot and then watches (never re-reading
everything on every change), plans with the pure scheduler, and writes only the
difference, batched into transactions. A placement onto a machine compares that
machine record's lease, so it is never written for a machine that is gone.

When a machine record disappears the engine waits a grace period before moving its
units: ENGINE_MACHINE_GRACE (a crashed agent started again replaces its record at once),
or ENGINE_RESTART_GRACE when the agent announced a restart (engine/restarting/<id>).
An agent that comes back in time keeps its units running. One that does not has had its
units stopped before its lease could expire, or before the restart grace ends (fencing,
agent/unitagent.py), so the new copies never overlap the old.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from etcd3 import etcdrpc, transactions

from agent import policy, scheduler
from agent.watching import Change, PrefixWatch, Resync, snapshot
from vulcano import units
from vulcano.keyspace import Keyspace
from vulcano.records import Assignment, DesiredState, Machine, UnitSpec

log = logging.getLogger(__name__)


class _LeaseCompare(transactions.BaseCompare):  # type: ignore[misc]
    """Compare a key's lease id (etcd ≥ 3.3); python-etcd3 has no helper for it."""

    def build_compare(self, compare: Any) -> None:
        compare.target = etcdrpc.Compare.LEASE
        compare.lease = int(self.value)


@dataclass
class EngineStats:
    plans: int = 0
    plan_seconds: float = 0.0
    txns: int = 0
    failed_txns: int = 0
    reads: int = 0


@dataclass
class _World:
    machines: dict[str, Machine] = field(default_factory=dict)
    specs: dict[str, UnitSpec] = field(default_factory=dict)
    # (machine, unit) → (assignment JSON, lease id)
    placed: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)  # reasons this leader wrote
    departed: dict[str, float] = field(default_factory=dict)  # machine → grace ends at
    restarting: set[str] = field(default_factory=set)  # machines announcing a restart


class Engine:
    """Campaign for leadership; while leader, keep placements matching desired state."""

    def __init__(
        self,
        client: Any,
        keyspace: Keyspace,
        identity: str,
        stop: threading.Event | None = None,
        lease_ttl: int = policy.ENGINE_LEASE_TTL,
    ) -> None:
        self.client = client
        self.ks = keyspace
        self.identity = identity
        self.stop_event = stop or threading.Event()
        self.lease_ttl = lease_ttl
        self.stats = EngineStats()
        self.is_leader = threading.Event()
        self._thread: threading.Thread | None = None
        self._leader_rev = 0
        self._lease: Any = None
        self._lost = threading.Event()

    # --- component protocol (agent.add_component) --------------------------------

    def start(self, agent: Any = None) -> None:
        self._thread = threading.Thread(target=self.run, name="unit-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=self.lease_ttl)

    # --- leadership -------------------------------------------------------------

    def run(self) -> None:
        delays = policy.ENGINE_RETRY.delays()
        while not self.stop_event.is_set():
            try:
                if self._campaign():
                    log.info("engine: %s is the leader", self.identity)
                    self.is_leader.set()
                    try:
                        self._lead()
                    finally:
                        self.is_leader.clear()
                        self._resign()
                    delays = policy.ENGINE_RETRY.delays()
                else:
                    self._wait_for_vacancy()
            except Exception as exc:
                log.warning("engine: %s; retrying", exc)
                self.is_leader.clear()
                self.stop_event.wait(next(delays))

    def _campaign(self) -> bool:
        lease = self.client.lease(self.lease_ttl)
        t = self.client.transactions
        key = self.ks.engine_leader
        ok, _ = self.client.transaction(
            compare=[t.version(key) == 0],
            success=[t.put(key, self.identity, lease=lease.id)],
            failure=[],
        )
        if not ok:
            with contextlib.suppress(Exception):
                lease.revoke()
            return False
        _, meta = self.client.get(key)
        if meta is None or meta.lease_id != lease.id:
            return False
        self._lease = lease
        self._leader_rev = meta.create_revision
        self._lost.clear()
        threading.Thread(target=self._keep_lease, name="engine-lease", daemon=True).start()
        return True

    def _keep_lease(self) -> None:
        lease = self._lease
        every = self.lease_ttl / policy.ENGINE_LEASE_REFRESHES
        while not self.stop_event.wait(every) and not self._lost.is_set():
            try:
                responses = lease.refresh()
                if not responses or responses[0].TTL <= 0:
                    log.warning("engine: leadership lease expired")
                    self._lost.set()
            except Exception as exc:
                log.warning("engine: cannot refresh leadership lease: %s", exc)
        self._lost.set()

    def _resign(self) -> None:
        self._lost.set()
        if self._lease is not None:
            with contextlib.suppress(Exception):
                self._lease.revoke()
        self._lease = None

    def _wait_for_vacancy(self) -> None:
        """Return once the leader key changes, or after ENGINE_CAMPAIGN_INTERVAL."""
        # The only key under this "prefix" is the leader key itself.
        revision, [leader] = snapshot(self.client, [self.ks.engine_leader])
        if not leader:
            return
        watch = PrefixWatch(self.client, [self.ks.engine_leader], revision + 1)
        try:
            item = watch.events.get(timeout=policy.ENGINE_CAMPAIGN_INTERVAL)
        except queue.Empty:
            return
        finally:
            watch.cancel()
        if isinstance(item, Resync):
            raise item  # the caller retries after a backoff

    # --- leading ----------------------------------------------------------------

    def _lead(self) -> None:
        while not self.stop_event.is_set() and not self._lost.is_set():
            world = _World()
            prefixes = [
                self.ks.machines_restarting,
                self.ks.machines,
                self.ks.units,
                self.ks.schedule,
            ]
            revision, parts = snapshot(self.client, prefixes)
            self.stats.reads += 1
            for part in parts:
                self._apply(world, part)
            plen = len(self.ks.unit_reasons)
            for value, meta in self.client.get_prefix(self.ks.unit_reasons):
                world.reasons[meta.key.decode()[plen:]] = value.decode()
            # Machines that hold placements but have no record went away before we led:
            # give them their grace from now, as if we had seen them go.
            now = time.monotonic()
            for machine, _ in world.placed:
                if machine not in world.machines and machine not in world.departed:
                    grace = (
                        policy.ENGINE_RESTART_GRACE
                        if machine in world.restarting
                        else policy.ENGINE_MACHINE_GRACE
                    )
                    world.departed[machine] = now + grace
            watch = PrefixWatch(self.client, prefixes, revision + 1)
            try:
                if self._grace_left(world) <= 0:
                    self._reconcile(world)
                self._follow(world, watch.events, owed=bool(world.departed))
            except Resync as exc:
                log.info("engine: resync (%s)", exc)
            finally:
                watch.cancel()

    def _grace_left(self, world: _World) -> float:
        """Seconds until the last departed machine's grace ends (0: plan now)."""
        now = time.monotonic()
        for mid, ends in list(world.departed.items()):
            if now >= ends:
                del world.departed[mid]
        if not world.departed:
            return 0.0
        return max(0.0, min(world.departed.values()) - now)

    def _follow(
        self, world: _World, events: queue.Queue[list[Change] | Resync], owed: bool = False
    ) -> None:
        """Apply watch events and re-plan; ``owed``: a plan deferred by a grace period."""
        last_plan = time.monotonic()
        while not self.stop_event.is_set() and not self._lost.is_set():
            wait = self._grace_left(world) if owed else 0.5
            if owed and wait <= 0:
                owed = False
                self._reconcile(world)
                last_plan = time.monotonic()
                continue
            try:
                item = events.get(timeout=min(0.5, wait) if owed else 0.5)
            except queue.Empty:
                if time.monotonic() - last_plan > policy.ENGINE_RESYNC_INTERVAL:
                    raise Resync("periodic") from None
                continue
            batch = [item]
            deadline = time.monotonic() + policy.ENGINE_BATCH_WINDOW
            while True:
                try:
                    batch.append(events.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            for b in batch:
                if isinstance(b, Resync):
                    raise b
                self._apply(world, b)
            if self._grace_left(world) > 0:
                owed = True
                continue
            self._reconcile(world)
            owed = False
            last_plan = time.monotonic()

    def _apply(self, world: _World, changes: list[Change]) -> None:
        for ch in changes:
            if ch.key.startswith(self.ks.machines):
                mid = ch.key[len(self.ks.machines) :]
                if ch.value is None:
                    if world.machines.pop(mid, None) is not None:
                        grace = (
                            policy.ENGINE_RESTART_GRACE
                            if mid in world.restarting
                            else policy.ENGINE_MACHINE_GRACE
                        )
                        world.departed[mid] = time.monotonic() + grace
                else:
                    world.departed.pop(mid, None)
                    try:
                        world.machines[mid] = Machine.from_json(ch.value, ch.lease)
                    except (ValueError, KeyError, TypeError):
                        log.warning("engine: unreadable machine record %s", ch.key)
            elif ch.key.startswith(self.ks.machines_restarting):
                mid = ch.key[len(self.ks.machines_restarting) :]
                if ch.value is None:
                    world.restarting.discard(mid)
                else:
                    world.restarting.add(mid)
                    if mid in world.departed:  # announced after the record went
                        world.departed[mid] = time.monotonic() + policy.ENGINE_RESTART_GRACE
            elif ch.key.startswith(self.ks.units):
                name = ch.key[len(self.ks.units) :]
                if ch.value is None:
                    world.specs.pop(name, None)
                else:
                    try:
                        world.specs[name] = UnitSpec.from_json(ch.value)
                    except (ValueError, KeyError, TypeError):
                        log.warning("engine: unreadable unit spec %s", ch.key)
            elif ch.key.startswith(self.ks.schedule):
                machine, _, name = ch.key[len(self.ks.schedule) :].partition("/")
                if ch.value is None:
                    world.placed.pop((machine, name), None)
                else:
                    world.placed[(machine, name)] = (ch.value.decode(), ch.lease)

    def _reconcile(self, world: _World) -> None:
        started = time.monotonic()
        wanted = {
            n: s
            for n, s in world.specs.items()
            if s.desired != DesiredState.INACTIVE and not units.is_template(n)
        }
        current: dict[str, str] = {}
        for machine, name in world.placed:
            spec = wanted.get(name)
            if spec is not None and not spec.options.global_:
                current[name] = machine
        machines = [m for m in world.machines.values() if m.lease_id]
        plan = scheduler.plan(
            [scheduler.UnitRequest(n, s.options) for n, s in wanted.items()], machines, current
        )
        self.stats.plans += 1
        self.stats.plan_seconds += time.monotonic() - started
        desired: dict[tuple[str, str], str] = {}
        for name, machine in plan.targets.items():
            desired[(machine, name)] = _assignment(wanted[name])
        for name, targets in plan.global_targets.items():
            for machine in targets:
                desired[(machine, name)] = _assignment(wanted[name])
        self._write(world, desired)
        self._explain(world, plan.reasons)

    def _write(self, world: _World, desired: dict[tuple[str, str], str]) -> None:
        t = self.client.transactions
        by_machine: dict[str, list[tuple[str, Any, tuple[str, int] | None]]] = {}
        for (machine, name), value in sorted(desired.items()):
            have = world.placed.get((machine, name))
            if have is not None and have[0] == value:
                continue
            key = self.ks.assignment(machine, name)
            by_machine.setdefault(machine, []).append((key, t.put(key, value), (value, 0)))
        for machine, name in sorted(set(world.placed) - set(desired)):
            key = self.ks.assignment(machine, name)
            by_machine.setdefault(machine, []).append((key, t.delete(key), None))
        # Deletes first: a unit that moves is gone from its old machine before it
        # appears on the new one. Whole machines go together, so few lease compares.
        for deleting in (True, False):
            batch: list[tuple[str, Any, tuple[str, int] | None]] = []
            batch_machines: list[str] = []
            for machine, ops in by_machine.items():
                for op in ops:
                    if (op[2] is None) != deleting:
                        continue
                    batch.append(op)
                    if machine not in batch_machines:
                        batch_machines.append(machine)
                    if len(batch) >= policy.ENGINE_OPS_PER_TXN:
                        self._commit(world, batch, batch_machines)
                        batch, batch_machines = [], []
            if batch:
                self._commit(world, batch, batch_machines)

    def _commit(
        self,
        world: _World,
        batch: list[tuple[str, Any, tuple[str, int] | None]],
        machines: list[str],
    ) -> None:
        t = self.client.transactions
        compares = [t.create(self.ks.engine_leader) == self._leader_rev]
        for m in machines:
            rec = world.machines.get(m)
            if rec is not None:  # placing onto a machine: only while its record lives
                compares.append(_LeaseCompare(self.ks.machine(m)) == rec.lease_id)
        self.stats.txns += 1
        ok, _ = self.client.transaction(compare=compares, success=[b[1] for b in batch], failure=[])
        if not ok:
            # A machine left meanwhile or we are no longer the leader; the watch will tell.
            self.stats.failed_txns += 1
            _, meta = self.client.get(self.ks.engine_leader)
            if meta is None or meta.create_revision != self._leader_rev:
                self._lost.set()
            return
        schedule_prefix = len(self.ks.schedule)
        for key, _, placed in batch:
            machine, _, name = key[schedule_prefix:].partition("/")
            if placed is None:
                world.placed.pop((machine, name), None)
            else:
                world.placed[(machine, name)] = placed

    def _explain(self, world: _World, reasons: dict[str, str]) -> None:
        """Write why a unit has no machine (unit-reasons/<name>); clear it once it has one."""
        t = self.client.transactions
        leader = t.create(self.ks.engine_leader) == self._leader_rev
        ops: list[tuple[str, Any]] = []
        for name, reason in sorted(reasons.items()):
            if world.reasons.get(name) != reason:
                ops.append((name, t.put(self.ks.unit_reason(name), reason)))
        for name in sorted(set(world.reasons) - set(reasons)):
            ops.append((name, t.delete(self.ks.unit_reason(name))))
        for i in range(0, len(ops), policy.ENGINE_OPS_PER_TXN):
            chunk = ops[i : i + policy.ENGINE_OPS_PER_TXN]
            self.stats.txns += 1
            ok, _ = self.client.transaction(
                compare=[leader], success=[op for _, op in chunk], failure=[]
            )
            if not ok:
                self._lost.set()
                return
            for name, _ in chunk:
                if name in reasons:
                    world.reasons[name] = reasons[name]
                else:
                    world.reasons.pop(name, None)


def _assignment(spec: UnitSpec) -> str:
    return Assignment.of(spec).to_json()
