"""Health checks and endpoints of the units running on this machine.

MachineUnits tells it, on every pass, which units are loaded here and whether they run
(``observe``: cheap, it never waits for etcd nor for a check). Its own thread runs each
running instance's checks on a small pool of threads, each on its own interval, and
publishes on the machine lease:

- ``check-states/<unit>/<machine>`` when a check's status changes, else, when only a
  message changed, at most once per interval (the shortest of its checks); a result like
  the last one writes nothing (so a published streak may lag);
- ``endpoints/<unit>/<machine>`` while the instance runs, declares a Port= and every
  check passes; deleted as soon as one of those stops being true.

Both are written only while the unit's assignment to this machine exists (a compare in
the same transaction), so a unit that moved away is never announced by its old machine.
The checks are the unit file's Check= lines and the ones in ``checks/<unit>/`` (for a
template instance also ``checks/<template>/``), watched, so a check added or removed
at runtime changes the running instance's set without a restart. With CheckRestart= an
instance failing that long is handed back to MachineUnits to restart (``observe``
returns it).
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from agent import policy
from agent.services.checkstate import CheckTracker, RestartTimer
from agent.services.instances import Instance, LiveInstance, Publication, plan
from agent.services.probes import ProbeResult, probe
from agent.services.runtime import RuntimeChecks
from vulcano.endpoints import (
    CheckSpec,
    CheckStatus,
    ServiceOptions,
    expanded,
    format_duration,
    service_options,
)
from vulcano.errors import VulcanoError
from vulcano.keyspace import Keyspace
from vulcano.units import parse

log = logging.getLogger(__name__)

Probe = Callable[[CheckSpec, str, "str | None"], ProbeResult]


class ServiceHost(Protocol):
    """What the services need from the machine: who it is, its address, its lease."""

    @property
    def machine_id(self) -> str: ...
    @property
    def public_ip(self) -> str: ...
    @property
    def keyspace(self) -> Keyspace: ...

    def etcd_client(self) -> Any: ...
    def lease_id(self) -> int: ...


class EtcdWriteFailed(VulcanoError, ConnectionError):
    """A write of the services did not reach etcd (it is made again on a later pass)."""


class UnitServices:
    """Runs the checks of this machine's running units and publishes their endpoints."""

    def __init__(self, host: ServiceHost, probe_fn: Probe = probe) -> None:
        self.host = host
        self.ks = host.keyspace
        self._probe = probe_fn
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._live: dict[str, LiveInstance] = {}
        self._withdraw: set[str] = set()  # units whose published keys must go
        self._published: set[str] = set()  # units with an endpoint or check state out
        self.runtime = RuntimeChecks(host.etcd_client, self.ks, self._wake.set, self._stop)
        self._options: dict[tuple[str, str], ServiceOptions] = {}  # by content and name
        self._timers: dict[str, RestartTimer] = {}
        self._notes: dict[str, str] = {}
        self._restarts: list[str] = []
        self._generations = itertools.count(1)
        self._lease = 0
        self._pool = ThreadPoolExecutor(policy.CHECK_WORKERS, thread_name_prefix="unit-check")
        self._threads: list[threading.Thread] = []
        self.writes = 0  # etcd writes made, for tests and the benchmark

    # --- start and stop -----------------------------------------------------------

    def start(self) -> None:
        for name, target in (("unit-services", self._run), ("unit-checks", self.runtime.run)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop checking; what was published stays on the lease for the next agent."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=policy.UNIT_THREAD_JOIN_TIMEOUT)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- what MachineUnits tells us ---------------------------------------------------

    def observe(self, instances: Iterable[Instance]) -> list[str]:
        """This pass's units; returns the ones CheckRestart= wants restarted now."""
        with self._lock:
            running = set()
            for inst in instances:
                if not inst.active:
                    continue
                running.add(inst.name)
                live = self._live.get(inst.name)
                if live is not None and (live.instance.hash, live.instance.sandbox_ip) == (
                    inst.hash,
                    inst.sandbox_ip,
                ):
                    continue
                # a new instance (or new content, a new address): what the last one
                # published, if anything, goes first (_drop), whatever comes next
                self._drop(inst.name)
                self._live[inst.name] = LiveInstance(
                    inst, self._options_of(inst), next(self._generations)
                )
                if inst.name in self._timers:
                    self._timers[inst.name].reset()
            for name in [n for n in self._live if n not in running]:
                self._drop(name)
            restarts, self._restarts = self._restarts, []
        self._wake.set()
        return restarts

    def forget(self, name: str) -> None:
        """The unit left this machine: withdraw it and forget its restarts."""
        with self._lock:
            self._drop(name)
            self._timers.pop(name, None)
            self._notes.pop(name, None)
        self._wake.set()

    def clear(self) -> None:
        """Fenced: every unit stopped; withdraw everything."""
        with self._lock:
            for name in list(self._live):
                self._drop(name)
        self._wake.set()

    def _drop(self, name: str) -> None:
        if self._live.pop(name, None) is not None:
            log.info("services: %s: its checks stop (stopped, gone or replaced)", name)
        if name in self._published:
            self._withdraw.add(name)

    def _options_of(self, inst: Instance) -> ServiceOptions:
        # by name too: a template's instances share its content, not its %i
        found = self._options.get((inst.hash, inst.name))
        if found is None:
            try:
                found = service_options(parse(inst.text, inst.name), inst.name)
            except VulcanoError as exc:  # refused at submit; a file from before that rule
                log.warning("services: %s: %s; no ports nor checks", inst.name, exc)
                found = ServiceOptions()
            found = dataclasses.replace(
                found, checks=tuple(self._expanded(c, inst.name) for c in found.checks)
            )
            self._options[(inst.hash, inst.name)] = found
        return found

    def _expanded(self, check: CheckSpec, name: str) -> CheckSpec:
        hostname = str(getattr(self.host, "hostname", "") or socket.gethostname())
        return expanded(check, name, hostname, self.host.machine_id)

    def checks_of(self, name: str, options: ServiceOptions) -> dict[str, CheckSpec]:
        """The checks an instance runs: the runtime ones, then the file's (which win a
        name)."""
        out = self.runtime.of(name)
        out.update({c.id: c for c in options.checks})
        return out

    # --- the loop ---------------------------------------------------------------------

    def _run(self) -> None:
        delays = policy.DAEMON_RETRY.delays()
        while not self._stop.is_set():
            self._wake.wait(self._next_wait())
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._sync_checks()
                self._launch_due()
                self._decide_restarts()
                self._publish()
                delays = policy.DAEMON_RETRY.delays()
            except Exception as exc:
                log.warning("services: %s; retrying", exc)
                self._stop.wait(next(delays))

    def _next_wait(self) -> float:
        with self._lock:
            dues = [d for live in self._live.values() for d in live.due.values()]
        if not dues:
            return policy.SERVICES_TICK
        return max(0.0, min(policy.SERVICES_TICK, min(dues) - time.monotonic()))

    def _sync_checks(self) -> None:
        """Follow added and removed checks (file and runtime) on each running instance."""
        with self._lock:
            now = time.monotonic()
            for name, live in self._live.items():
                wanted = self.checks_of(name, live.options)
                for cid in [c for c in live.trackers if wanted.get(c) != live.trackers[c].spec]:
                    log.info("services: %s: check %s removed", name, cid)
                    del live.trackers[cid]
                    live.due.pop(cid, None)
                    live.changed = True
                for cid, spec in wanted.items():
                    if cid not in live.trackers:
                        live.trackers[cid] = CheckTracker(spec)
                        live.due[cid] = now
                        live.changed = True

    def _launch_due(self) -> None:
        with self._lock:
            now = time.monotonic()
            for name, live in self._live.items():
                inst = live.instance
                address = inst.sandbox_ip or self.host.public_ip
                for cid, tracker in live.trackers.items():
                    if cid in live.inflight or live.due.get(cid, now) > now:
                        continue
                    live.inflight.add(cid)
                    live.due[cid] = now + tracker.spec.interval
                    self._pool.submit(
                        self._check_once, name, live.generation, tracker.spec, address, inst.netns
                    )

    def _check_once(
        self, name: str, generation: int, spec: CheckSpec, address: str, netns: str | None
    ) -> None:
        result = self._probe(spec, address, netns)
        with self._lock:
            live = self._live.get(name)
            if live is None or live.generation != generation:
                return  # the instance stopped (or was replaced) meanwhile
            live.inflight.discard(spec.id)
            tracker = live.trackers.get(spec.id)
            if tracker is None or tracker.spec != spec:
                return  # the check was removed or changed meanwhile
            before, said = tracker.result.status, tracker.result.output
            if tracker.record(result.ok, result.output, time.time()):
                live.changed = True
                log.info(
                    "services: %s: check %s %s -> %s (%s)",
                    name,
                    spec.id,
                    before,
                    tracker.result.status,
                    result.output,
                )
            elif tracker.result.output != said:
                live.dirty = True  # news, not urgent: written within the interval
        self._wake.set()

    def _decide_restarts(self) -> None:
        with self._lock:
            now = time.monotonic()
            for name, live in self._live.items():
                after = live.options.check_restart
                if after is None:
                    continue
                timer = self._timers.setdefault(name, RestartTimer(after))
                timer.after = after
                if not timer.observe(live.status == CheckStatus.FAILING, now):
                    continue
                failing = sorted(
                    c for c, t in live.trackers.items() if t.result.status == CheckStatus.FAILING
                )
                at = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
                note = (
                    f"restarted at {at}: check {', '.join(failing)} failing for "
                    f"{format_duration(after)} (CheckRestart={format_duration(after)})"
                )
                log.warning("services: %s: %s", name, note)
                self._notes[name] = note
                self._restarts.append(name)
                live.changed = True

    # --- publishing ---------------------------------------------------------------------

    def _publish(self) -> None:
        lease = self.host.lease_id()
        with self._lock:
            if lease != self._lease:  # a new lease: what was on the old one is gone
                self._lease = lease
                for live in self._live.values():
                    live.endpoint = live.states = None
                    live.changed = True
            withdraw, self._withdraw = self._withdraw, set()
            me, ip = self.host.machine_id, self.host.public_ip
            plans = [
                plan(name, live, me, ip, self._notes.get(name, ""))
                for name, live in self._live.items()
            ]
        client = self.host.etcd_client()
        for name in sorted(withdraw):
            try:
                self._delete(client, name)
            except Exception:
                with self._lock:
                    self._withdraw.add(name)  # again next pass
                raise
        for p in plans:
            if p is not None:
                self._write(client, lease, p)

    def _write(self, client: Any, lease: int, pub: Publication) -> None:
        me = self.host.machine_id
        t = client.transactions
        ops = []
        endpoint_key = self.ks.endpoint(pub.name, me)
        states_key = self.ks.check_state(pub.name, me)
        if pub.endpoint != pub.old_endpoint:
            if pub.endpoint is None:
                ops.append(t.delete(endpoint_key))
            else:
                ops.append(t.put(endpoint_key, pub.endpoint, lease=lease))
        if pub.states != pub.old_states:
            if pub.states is None:
                ops.append(t.delete(states_key))
            else:
                ops.append(t.put(states_key, pub.states, lease=lease))
        self.writes += 1
        try:
            ok, _ = client.transaction(
                compare=[t.version(self.ks.assignment(me, pub.name)) > 0],
                success=ops,
                failure=[],
            )
        except Exception:
            ok = None
        with self._lock:
            live = self._live.get(pub.name)
            if live is None or live.generation != pub.generation:
                # it stopped while we wrote: make sure what we wrote goes again
                self._withdraw.add(pub.name)
                self._published.add(pub.name)
                self._wake.set()
                return
            if not ok:
                live.changed = True  # again on a later pass
                if ok is None:
                    raise EtcdWriteFailed(f"cannot publish {pub.name}'s check state")
                # the assignment is gone (the unit is leaving): not every pass
                live.refused_until = time.monotonic() + policy.SERVICES_REFUSED_RETRY
                return
            if pub.endpoint != pub.old_endpoint:
                log.info(
                    "services: %s: endpoint %s",
                    pub.name,
                    "published" if pub.endpoint else "withdrawn",
                )
            live.endpoint, live.states = pub.endpoint, pub.states
            if pub.states != pub.old_states:
                live.states_at = time.monotonic()
            self._published.add(pub.name)

    def _delete(self, client: Any, name: str) -> None:
        me = self.host.machine_id
        t = client.transactions
        self.writes += 1
        client.transaction(
            compare=[],
            success=[
                t.delete(self.ks.endpoint(name, me)),
                t.delete(self.ks.check_state(name, me)),
            ],
            failure=[],
        )
        with self._lock:
            if name not in self._live:
                self._published.discard(name)
        log.info("services: %s: endpoint and check state withdrawn", name)
