"""The unit engine: one leader among the agents places units and writes the placements.

Leadership is an etcd key on the leader's lease (created only if absent); every write
the leader makes compares that key's create revision, so a deposed leader's late
writes fail instead of fighting the new one. The leader keeps an in-memory copy of
machines, units and placements, fed by one snapshot and then watches (never re-reading
everything on every change), plans with a pure function (agent/units/plan.py: the
scheduler's placements, diffed against what is placed, batched) and executes that plan.
When only machines went or units came since the last plan, only the units without a
machine are placed, from that plan's memo (agent/units/replan.py): the same answer,
without a full plan's seconds.
A placement onto a machine compares that machine record's lease, so it is never written
for a machine that is gone.

When a machine record disappears the engine waits a grace period before moving its
units: ENGINE_MACHINE_GRACE (a crashed agent started again replaces its record at once),
or ENGINE_RESTART_GRACE when the agent announced a restart (engine/restarting/<id>).
An agent that comes back in time keeps its units running. One that does not has had its
units stopped before its lease could expire, or before the restart grace ends (fencing,
agent/units/machine_units.py), so the new copies never overlap the old.

A machine decommissioned on purpose (decommissioned/<id>, `vulcano machine remove`) is
no place for units any more, while its record lives too: its units are moved at once,
and when its record goes there is no grace to wait out (nothing to come back).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from typing import Any

from agent import policy
from agent.units import plan, replan
from agent.units.world import EngineStats, World, parse_spec
from vulcano.etcd import lease_compare
from vulcano.keyspace import Keyspace
from vulcano.records import Machine
from vulcano.watch import Change, PrefixWatch, Resync, snapshot

log = logging.getLogger(__name__)


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
        self._last_plan = 0.0  # seconds the last plan took

    # --- start and stop -----------------------------------------------------------

    def start(self) -> None:
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
                    if not self.stop_event.is_set():
                        log.info("engine: %s stepped down", self.identity)
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
        self._lost = threading.Event()  # this term's: a lost term's keep-alive may wake late
        keeper = threading.Thread(target=self._keep_lease, args=(lease, self._lost), daemon=True)
        keeper.name = "engine-lease"
        keeper.start()
        return True

    def _keep_lease(self, lease: Any, lost: threading.Event) -> None:
        every = self.lease_ttl / policy.ENGINE_LEASE_REFRESHES
        while not self.stop_event.wait(every) and not lost.is_set():
            try:
                responses = lease.refresh()
                if not responses or responses[0].TTL <= 0:
                    log.warning("engine: %s lost leadership: its lease expired", self.identity)
                    lost.set()
            except Exception as exc:
                log.warning("engine: cannot refresh leadership lease: %s", exc)
        lost.set()

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
            world = World()
            prefixes = [
                self.ks.decommissioned,
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
                if (
                    machine not in world.machines
                    and machine not in world.departed
                    and machine not in world.decommissioned
                ):
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

    def _grace_left(self, world: World) -> float:
        """Seconds until the last departed machine's grace ends (0: plan now)."""
        now = time.monotonic()
        for mid, ends in list(world.departed.items()):
            if now >= ends:
                del world.departed[mid]
        if not world.departed:
            return 0.0
        return max(0.0, min(world.departed.values()) - now)

    def _follow(
        self, world: World, events: queue.Queue[list[Change] | Resync], owed: bool = False
    ) -> None:
        """Apply watch events and re-plan; ``owed``: a plan deferred by a grace period."""
        last_plan = time.monotonic()
        while not self.stop_event.is_set() and not self._lost.is_set():
            wait = self._grace_left(world) if owed else policy.ENGINE_IDLE_TICK
            if owed and wait <= 0:
                owed = False
                self._reconcile(world)
                last_plan = time.monotonic()
                continue
            try:
                tick = policy.ENGINE_IDLE_TICK
                item = events.get(timeout=min(tick, wait) if owed else tick)
            except queue.Empty:
                if time.monotonic() - last_plan > policy.ENGINE_RESYNC_INTERVAL:
                    raise Resync("periodic") from None
                continue
            # While a big change streams in, gather for as long as the last plan took:
            # planning stays at most about half of the engine's time. A machine's grace
            # gathers what comes meanwhile: the window never outlasts it.
            window = min(max(policy.ENGINE_BATCH_WINDOW, self._last_plan), policy.ENGINE_BATCH_MAX)
            deadline = time.monotonic() + window
            news = False
            while True:
                if isinstance(item, Resync):
                    raise item
                news = self._apply(world, item) or news
                deadline = min([deadline, *world.departed.values()])
                try:
                    item = events.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
            if not news and not owed:
                continue  # only the echoes of our own placement writes: nothing to plan
            if self._grace_left(world) > 0:
                owed = True
                continue
            self._reconcile(world)
            owed = False
            last_plan = time.monotonic()

    def _apply(self, world: World, changes: list[Change]) -> bool:
        """Fold changes into ``world``; False when they were only our own writes' echoes."""
        news = False
        for ch in changes:
            if ch.key.startswith(self.ks.schedule):
                machine, _, name = ch.key[len(self.ks.schedule) :].partition("/")
                if ch.value is None:
                    news = world.placed.pop((machine, name), None) is not None or news
                else:
                    value = ch.value.decode()
                    news = news or world.placed.get((machine, name), (None, 0))[0] != value
                    world.placed[(machine, name)] = (value, ch.lease)
                continue
            news = True
            if ch.key.startswith(self.ks.machines):
                mid = ch.key[len(self.ks.machines) :]
                if ch.value is None:
                    if (
                        world.machines.pop(mid, None) is not None
                        and mid not in world.decommissioned
                    ):
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
            elif ch.key.startswith(self.ks.decommissioned):
                mid = ch.key[len(self.ks.decommissioned) :]
                if ch.value is None:
                    world.decommissioned.discard(mid)
                else:
                    world.decommissioned.add(mid)
                    world.departed.pop(mid, None)  # nothing to wait for
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
                        world.specs[name] = parse_spec(ch.value, world.specs.get(name))
                    except (ValueError, KeyError, TypeError):
                        log.warning("engine: unreadable unit spec %s", ch.key)
        return news

    def _reconcile(self, world: World) -> None:
        started = time.monotonic()
        placed = {key: value for key, (value, _) in world.placed.items()}
        machines = {m: r for m, r in world.machines.items() if m not in world.decommissioned}
        # after machines went or units came (only), only units without a machine are placed
        memo, specs, why = world.memo, world.specs, world.reasons
        done = replan.replan(memo, specs, machines, placed, why) if memo is not None else None
        self.stats.replans += done is not None
        actions, world.memo = done or replan.plan_remembered(specs, machines, placed, why)
        self.stats.plans += 1
        self._last_plan = time.monotonic() - started
        self.stats.plan_seconds += self._last_plan
        for batch in actions.assignments:
            self._commit(world, batch)
            if self._lost.is_set():
                return  # deposed: the rest of this plan is no longer ours to write
        for reasons in actions.reasons:
            if not self._explain(world, reasons):
                return

    def _commit(self, world: World, batch: plan.AssignmentBatch) -> None:
        """One transaction of placement writes, while we lead and the machines live."""
        t = self.client.transactions
        compares = [t.create(self.ks.engine_leader) == self._leader_rev]
        for machine, lease_id in batch.machine_leases:
            compares.append(lease_compare(self.client, self.ks.machine(machine)) == lease_id)
        ops = [
            t.delete(self.ks.assignment(w.machine, w.unit))
            if w.value is None
            else t.put(self.ks.assignment(w.machine, w.unit), w.value)
            for w in batch.writes
        ]
        self.stats.txns += 1
        ok, _ = self.client.transaction(compare=compares, success=ops, failure=[])
        if not ok:
            # A machine left meanwhile or we are no longer the leader; the watch will tell.
            self.stats.failed_txns += 1
            _, meta = self.client.get(self.ks.engine_leader)
            if meta is None or meta.create_revision != self._leader_rev:
                self._deposed("placement")
            return
        for w in batch.writes:
            if w.value is None:
                world.placed.pop((w.machine, w.unit), None)
            else:
                world.placed[(w.machine, w.unit)] = (w.value, 0)

    def _deposed(self, what: str) -> None:
        """etcd refused a write of ours on the leader key's compare: another term began."""
        self.stats.refused_as_deposed += 1
        msg = "engine: %s is no longer the leader: etcd refused its %s write (term %d)"
        log.warning(msg, self.identity, what, self._leader_rev)
        self._lost.set()

    def _explain(self, world: World, reasons: tuple[plan.ReasonWrite, ...]) -> bool:
        """Write why units have no machine (unit-reasons/<name>); False: no longer leader."""
        t = self.client.transactions
        ops = [
            t.delete(self.ks.unit_reason(r.unit))
            if r.reason is None
            else t.put(self.ks.unit_reason(r.unit), r.reason)
            for r in reasons
        ]
        self.stats.txns += 1
        ok, _ = self.client.transaction(
            compare=[t.create(self.ks.engine_leader) == self._leader_rev], success=ops, failure=[]
        )
        if not ok:
            self.stats.failed_txns += 1
            self._deposed("reason")
            return False
        for r in reasons:
            if r.reason is None:
                world.reasons.pop(r.unit, None)
            else:
                world.reasons[r.unit] = r.reason
        return True
