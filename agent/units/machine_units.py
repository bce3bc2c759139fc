"""This machine's units: run what the engine assigned to this machine, and say so.

It watches only ``schedule/<this machine>/`` (one snapshot, then a watch), drives the
runner towards each assignment's desired state, stops and unloads whatever is no longer
assigned, and publishes each unit's state (agent/units/reports.py).
A restarted agent finds its units still running under their supervisors and adopts
them: nothing is restarted.

Fencing: membership tells us until when the machine lease is certainly held. We pass
that deadline (minus FENCE_MARGIN) to the runner's supervisors and, once it passes,
stop every unit ourselves: a partitioned or stalled machine has stopped its units
before its lease can expire, and only after the expiry does the engine place them again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from agent import policy
from agent.services.instances import Instance
from agent.units.host import Membership, Sandboxes, Services
from agent.units.reports import UnitReports
from agent.units.runners.base import Generational, RunContext, Runner
from agent.units.unit_files import UnitFiles
from vulcano.records import RUNNING_STATES, Assignment, DesiredState
from vulcano.watch import Change, Resync, snapshot
from vulcano.watch_hub import open_watch

log = logging.getLogger(__name__)


def sandbox_name(machine_id: str, unit: str) -> str:
    """A network-namespace-safe name for a unit's sandbox, unique per machine and unit."""
    stem = "".join(c if c.isalnum() else "-" for c in unit.rsplit(".", 1)[0])[:20]
    digest = hashlib.sha1(f"{machine_id}/{unit}".encode(), usedforsecurity=False).hexdigest()
    return f"vu{digest[:8]}-{stem}"


@dataclass
class _Fenced(Exception):
    why: str


class MachineUnits:
    """Follows this machine's assignments with a runner; started and stopped by ``Units``."""

    def __init__(
        self,
        host: Membership,
        runner: Runner,
        sandboxes: Sandboxes | None = None,
        services: Services | None = None,
    ) -> None:
        self.host = host
        self.runner = runner
        self.sandboxes = sandboxes
        self.services = services
        self.ks = host.keyspace
        self.stop_event = threading.Event()
        self.assigned: dict[str, Assignment] = {}
        self._problems: dict[str, str] = {}  # why an assigned unit cannot even be loaded
        self._kick: set[str] = set()  # start these even if they failed before
        self._restarting: set[str] = set()  # stopped by CheckRestart=: start once stopped
        self.files = UnitFiles(lambda: self.host.etcd_client(), self.ks)
        self._sandbox_ips: dict[str, str] = {}
        self.reports = UnitReports(host, runner)
        self._thread: threading.Thread | None = None
        self._fence_thread: threading.Thread | None = None
        self.requests = 0  # etcd requests made besides the reports', for the benchmark
        self.fenced = threading.Event()
        self._generation = -1  # the runner's at the last look (Generational runners)

    # --- start and stop -----------------------------------------------------------

    def start(self) -> None:
        if self.services is not None:
            self.services.start()
        self._thread = threading.Thread(target=self.run, name="machine-units", daemon=True)
        self._thread.start()
        self._fence_thread = threading.Thread(
            target=self._keep_fence, name="unit-fence", daemon=True
        )
        self._fence_thread.start()

    def _keep_fence(self) -> None:
        """Pass every lease confirmation on to the units' supervisors at once.

        Its own thread: a long reconcile pass must never let the fence go stale while
        the lease is in fact held (the units would stop themselves for nothing). It looks
        again within a quarter of the time the units have left, at least every tick."""
        written = -1.0
        wait = policy.UNIT_FENCE_TICK
        while not self.stop_event.wait(wait):
            wait = policy.UNIT_FENCE_TICK
            if self.fenced.is_set():
                continue
            deadline = self._fence_deadline()
            now = time.monotonic()
            if deadline != written and now < deadline:
                with contextlib.suppress(OSError):
                    self.runner.fence(deadline)
                    written = deadline
            wait = max(wait, (written - now) / 4)

    def stop(self) -> None:
        """Stop reconciling; units keep running briefly, for the next agent to adopt."""
        self.stop_event.set()
        for thread in (self._thread, self._fence_thread):
            if thread is not None:
                thread.join(timeout=policy.UNIT_THREAD_JOIN_TIMEOUT)
        if self.services is not None:
            self.services.stop()
        self.runner.reap(policy.SUPERVISOR_SPAWN_TIMEOUT)
        log.info("machine units: stopping; units stay up for a new agent to adopt")
        # The machine record may be removed right after this (deregistration). Announce
        # a restart first: the engine then waits ENGINE_RESTART_GRACE before moving our
        # units, so they may run on (for a new agent to adopt) until shortly before that.
        # Without the announcement they are fenced as the lease would have them.
        deadline = self._fence_deadline()
        if self.runner.loaded() and not self.fenced.is_set() and self._decommissioned():
            self._fence("this machine was decommissioned")  # no new agent will adopt them
        if self.runner.loaded() and not self.fenced.is_set():
            try:
                lease = self.client.lease(int(policy.ENGINE_RESTART_GRACE) + 1)
                self.client.put(
                    self.ks.machine_restarting(self.host.machine_id), "restarting", lease=lease.id
                )
                deadline = time.monotonic() + policy.STOPPED_AGENT_FENCE
            except Exception as exc:
                log.warning("machine units: cannot announce the restart (%s): fenced", exc)
        with contextlib.suppress(Exception):
            self.runner.fence(deadline)

    def _decommissioned(self) -> bool:
        try:
            return (
                self.client.get(self.ks.machine_decommissioned(self.host.machine_id))[1] is not None
            )
        except Exception:  # etcd unreachable: stop as for a restart
            return False

    # --- loop ------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        return self.host.etcd_client()

    def _fence_deadline(self) -> float:
        ttl = self.host.lease_ttl
        margin = policy.FENCE_MARGIN
        if ttl > 0:
            margin = min(margin, ttl * policy.FENCE_MARGIN_FRACTION)
        return self.host.lease_deadline() - margin

    def run(self) -> None:
        delays = policy.ENGINE_RETRY.delays()
        while not self.stop_event.is_set():
            try:
                if time.monotonic() >= self._fence_deadline():
                    self._fence("machine lease not confirmed")
                    self.stop_event.wait(policy.MACHINE_UNITS_TICK)
                    continue
                self.fenced.clear()
                self._session()
                delays = policy.ENGINE_RETRY.delays()
            except _Fenced as f:
                self._fence(f.why)
            except Resync as exc:
                log.info("machine units: resync (%s)", exc)
            except Exception as exc:
                log.warning("machine units: %s; retrying", exc)
                self.stop_event.wait(next(delays))

    def _session(self) -> None:
        prefix = self.ks.machine_schedule(self.host.machine_id)
        revision, [entries] = snapshot(self.client, [prefix])
        self.requests += 1
        self.assigned = {}
        self._apply(entries, prefix)
        self._kick.clear()  # a restarted agent leaves failed units failed
        watch = open_watch(self.client, [prefix], revision + 1)
        last_pass = 0.0
        dirty = True
        try:
            while not self.stop_event.is_set():
                deadline = self._fence_deadline()
                now = time.monotonic()
                if now >= deadline:
                    raise _Fenced("machine lease not confirmed in time")
                self.runner.fence(deadline)  # before starting anything in this session
                # a pass on every change, and a look at the runner every MACHINE_UNITS_POLL
                if dirty or (now - last_pass >= policy.MACHINE_UNITS_POLL and self._moved()):
                    self._reconcile()
                    self.reports.publish(self.assigned, self._problems, self._sandbox_ips)
                    self._tell_services()
                    last_pass, dirty = now, False
                tick = policy.MACHINE_UNITS_TICK
                if not self._polled():  # nothing to look at but the fence: nearer it, sooner
                    tick = max(tick, (deadline - time.monotonic()) / 4)
                try:
                    item = watch.events.get(timeout=tick)
                except queue.Empty:
                    continue
                items = [item]
                with contextlib.suppress(queue.Empty):
                    while True:
                        items.append(watch.events.get_nowait())
                for it in items:
                    if isinstance(it, Resync):
                        raise it
                    self._apply(it, prefix)
                dirty = True
        finally:
            watch.cancel()

    def _polled(self) -> bool:
        """Whether the runner must be looked at every MACHINE_UNITS_POLL (not Generational)."""
        return self.services is not None or not isinstance(self.runner, Generational)

    def _moved(self) -> bool:
        """Whether a look at the runner may find news (False: its generation stood still)."""
        if self._polled():
            return True
        assert isinstance(self.runner, Generational)
        generation = self.runner.generation()
        if generation == self._generation:
            return False
        self._generation = generation
        return True

    def _apply(self, changes: list[Change], prefix: str) -> None:
        for ch in changes:
            name = ch.key[len(prefix) :]
            if ch.value is None:
                self.assigned.pop(name, None)
                self._problems.pop(name, None)
            else:
                try:
                    new = Assignment.from_json(ch.value)
                except (ValueError, KeyError, TypeError):
                    log.warning("machine units: unreadable assignment %s", ch.key)
                    continue
                old = self.assigned.get(name)
                if new.desired == DesiredState.LAUNCHED and (
                    old is None or old.desired != DesiredState.LAUNCHED or old.starts != new.starts
                ):
                    self._kick.add(name)  # asked to start (again): a failed unit too
                self.assigned[name] = new

    def _fence(self, why: str) -> None:
        if not self.fenced.is_set():
            log.warning("machine units: %s: stopping every unit (fenced)", why)
        self.fenced.set()
        self.runner.fence(0.0)
        for name in self.runner.loaded():
            self.runner.stop(name)
        self.assigned = {}
        self.reports.clear()
        if self.services is not None:
            self.services.clear()

    # --- reconcile -------------------------------------------------------------------

    def _reconcile(self) -> None:
        loaded = set(self.runner.loaded())
        self.files.prefetch(a.hash for a in self.assigned.values())
        for name, a in sorted(self.assigned.items()):
            st = self.runner.status(name) if name in loaded else None
            running = st is not None and st.active in RUNNING_STATES
            if st is None or st.hash != a.hash:
                if running:
                    log.info("machine units: stopping %s (new content %s)", name, a.hash[:7])
                    self.runner.stop(name)  # new content: stop first, load when stopped
                    continue
                text = self.files.text(a.hash)
                if text is None:
                    self._problems[name] = f"unit file {a.hash[:7]} is missing from etcd"
                    continue
                netns = None
                if a.options.sandbox:
                    netns = self._sandbox(name)
                    if netns is None:
                        continue
                self.runner.load(
                    RunContext(name, a.hash, self.host.hostname, self.host.machine_id, netns),
                    text,
                )
                self._problems.pop(name, None)
                self._kick.add(name)  # new content: start even if the old one had failed
                st = self.runner.status(name)
                running = False
            if name in self._restarting and not running:
                self._restarting.discard(name)
                self._kick.add(name)
            kicked = name in self._kick
            self._kick.discard(name)
            if (
                a.desired == DesiredState.LAUNCHED
                and not running
                and (st.active != "failed" or kicked)
            ):
                log.info("machine units: starting %s (was %s/%s)", name, st.active, st.sub)
                self.runner.start(name)
            elif a.desired != DesiredState.LAUNCHED and running and st.active != "deactivating":
                log.info("machine units: stopping %s (desired %s)", name, a.desired)
                self.runner.stop(name)
        for name in sorted(loaded - set(self.assigned)):
            st = self.runner.status(name)
            if st.active in RUNNING_STATES:
                if st.active != "deactivating":
                    log.info("machine units: stopping %s (no longer assigned here)", name)
                    self.runner.stop(name)
                continue
            self.runner.unload(name)
            if name not in self.runner.loaded():
                self._forget(name)

    def _tell_services(self) -> None:
        """Restarts are a stop: a later pass starts the unit once it has stopped."""
        if self.services is None:
            return
        instances = []
        for name, a in sorted(self.assigned.items()):
            st = self.runner.status(name)
            text = self.files.text(a.hash) if st.active == "active" and st.hash == a.hash else None
            if text is not None:  # only what runs: the services withdraw the rest
                ns = sandbox_name(self.host.machine_id, name) if a.options.sandbox else None
                ip = self._sandbox_ips.get(name)
                instances.append(Instance(name, a.hash, text, True, ns, ip))
        for name in self.services.observe(instances):
            wanted = self.assigned.get(name)
            if wanted is None or wanted.desired != DesiredState.LAUNCHED:
                continue
            log.warning("machine units: restarting %s: its checks kept failing", name)
            self.runner.note(name, "restarting: its checks kept failing (CheckRestart=)")
            self.runner.stop(name)
            self._restarting.add(name)

    def _sandbox(self, name: str) -> str | None:
        sandboxes = self.sandboxes
        sb = sandbox_name(self.host.machine_id, name)
        if sandboxes is None:
            self._problems[name] = "this machine has no overlay for Sandbox= units"
            return None
        if name not in self._sandbox_ips:
            try:
                try:  # a sandbox this machine made before the agent restarted
                    ip = sandboxes.address_of(sb)
                except Exception:
                    ip = None
                self._sandbox_ips[name] = ip or sandboxes.create(sb)
            except Exception as exc:
                log.warning("machine units: sandbox for %s: %s", name, exc)
                self._problems[name] = f"cannot make its sandbox: {exc}"
                return None
        return sb

    def _forget(self, name: str) -> None:
        """A unit left this machine: drop its sandbox and the state we published."""
        if self.sandboxes is not None:
            # also after a restart, when we no longer remember making it
            with contextlib.suppress(Exception):
                self.sandboxes.delete(sandbox_name(self.host.machine_id, name))
        self._sandbox_ips.pop(name, None)
        self._restarting.discard(name)
        self.reports.forget(name)
        if self.services is not None:
            self.services.forget(name)
