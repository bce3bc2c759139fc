"""The unit agent: makes this machine run what the engine assigned to it, and says so.

It watches only ``schedule/<this machine>/`` (one snapshot, then a watch), drives the
runner towards each assignment's desired state, stops and unloads whatever is no longer
assigned, and publishes each unit's state (on the machine lease, and only while the
assignment exists: a moved unit's old machine can never overwrite the new one's report).
A restarted agent finds its units still running under their supervisors and adopts
them: nothing is restarted.

Fencing: the host tells us until when its machine lease is certainly held. The agent
passes that deadline (minus FENCE_MARGIN) to the runner's supervisors and, once it
passes, stops every unit itself: a partitioned or stalled machine has stopped its units
before its lease can expire, and only after the expiry does the engine place them again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agent import policy
from agent.runner import BuiltinRunner, RunContext, Runner, RunStatus
from agent.watching import Change, PrefixWatch, Resync, snapshot
from vulcano.keyspace import Keyspace
from vulcano.records import RUNNING_STATES, Assignment, DesiredState, UnitState

log = logging.getLogger(__name__)


class SandboxManager(Protocol):
    def create(self, name: str) -> str: ...
    def delete(self, name: str) -> None: ...


class UnitHost(Protocol):
    """What the unit agent needs from the machine's agent (membership)."""

    machine_id: str
    hostname: str
    keyspace: Keyspace
    state_dir: Path

    def etcd_client(self) -> Any: ...
    def lease_id(self) -> int: ...
    def lease_deadline(self) -> float: ...
    def sandboxes(self) -> SandboxManager | None: ...


def sandbox_name(machine_id: str, unit: str) -> str:
    """A network-namespace-safe name for a unit's sandbox, unique per machine and unit."""
    stem = "".join(c if c.isalnum() else "-" for c in unit.rsplit(".", 1)[0])[:20]
    digest = hashlib.sha1(f"{machine_id}/{unit}".encode(), usedforsecurity=False).hexdigest()
    return f"vu{digest[:8]}-{stem}"


@dataclass
class _Fenced(Exception):
    why: str


class UnitAgent:
    """A component of the node agent: start(agent) / stop()."""

    def __init__(self, host: UnitHost, runner: Runner | None = None) -> None:
        self.host = host
        self.runner: Runner = runner or BuiltinRunner(host.state_dir)
        self.ks = host.keyspace
        self.stop_event = threading.Event()
        self.assigned: dict[str, Assignment] = {}
        self.published: dict[str, str] = {}
        self._seen: dict[str, tuple[RunStatus, str, str | None]] = {}
        self._problems: dict[str, str] = {}  # why an assigned unit cannot even be loaded
        self._kick: set[str] = set()  # start these even if they failed before
        self._journal_seq: dict[str, int] = {}
        self._journal_at = 0.0
        self._texts: dict[str, str] = {}
        self._sandbox_ips: dict[str, str] = {}
        self._thread: threading.Thread | None = None
        self._fence_thread: threading.Thread | None = None
        self.requests = 0
        self.fenced = threading.Event()

    # --- component protocol --------------------------------------------------------

    def start(self, agent: Any = None) -> None:
        self._thread = threading.Thread(target=self.run, name="unit-agent", daemon=True)
        self._thread.start()
        self._fence_thread = threading.Thread(
            target=self._keep_fence, name="unit-fence", daemon=True
        )
        self._fence_thread.start()

    def _keep_fence(self) -> None:
        """Pass every lease confirmation on to the units' supervisors at once.

        Its own thread: a long reconcile pass must never let the fence go stale while
        the lease is in fact held (the units would stop themselves for nothing)."""
        written = -1.0
        while not self.stop_event.wait(policy.UNIT_FENCE_TICK):
            if self.fenced.is_set():
                continue
            deadline = self._fence_deadline()
            if deadline != written and time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    self.runner.fence(deadline)
                    written = deadline

    def stop(self) -> None:
        """Stop reconciling; units keep running briefly, for the next agent to adopt."""
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._fence_thread is not None:
            self._fence_thread.join(timeout=10)
        reap = getattr(self.runner, "reap", None)
        if reap is not None:
            reap(policy.SHIM_SPAWN_TIMEOUT)
        log.info("unit agent: stopping; units stay up for a new agent to adopt")
        # The machine record may be removed right after this (deregistration). Announce
        # a restart first: the engine then waits ENGINE_RESTART_GRACE before moving our
        # units, so they may run on (for a new agent to adopt) until shortly before that.
        # Without the announcement they are fenced as the lease would have them.
        deadline = self._fence_deadline()
        if self.runner.loaded() and not self.fenced.is_set():
            try:
                lease = self.client.lease(int(policy.ENGINE_RESTART_GRACE) + 1)
                self.client.put(
                    self.ks.machine_restarting(self.host.machine_id), "restarting", lease=lease.id
                )
                deadline = time.monotonic() + policy.STOPPED_AGENT_FENCE
            except Exception as exc:
                log.warning("unit agent: cannot announce the restart (%s): units fenced", exc)
        with contextlib.suppress(Exception):
            self.runner.fence(deadline)

    # --- loop ------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        return self.host.etcd_client()

    def _fence_deadline(self) -> float:
        ttl = getattr(self.host, "lease_ttl", None)
        margin = policy.FENCE_MARGIN
        if isinstance(ttl, int | float) and ttl > 0:
            margin = min(margin, ttl * policy.FENCE_MARGIN_FRACTION)
        return self.host.lease_deadline() - margin

    def run(self) -> None:
        delays = policy.ENGINE_RETRY.delays()
        while not self.stop_event.is_set():
            try:
                if time.monotonic() >= self._fence_deadline():
                    self._fence("machine lease not confirmed")
                    self.stop_event.wait(policy.UNIT_AGENT_TICK)
                    continue
                self.fenced.clear()
                self._session()
                delays = policy.ENGINE_RETRY.delays()
            except _Fenced as f:
                self._fence(f.why)
            except Resync as exc:
                log.info("unit agent: resync (%s)", exc)
            except Exception as exc:
                log.warning("unit agent: %s; retrying", exc)
                self.stop_event.wait(next(delays))

    def _session(self) -> None:
        prefix = self.ks.machine_schedule(self.host.machine_id)
        revision, [entries] = snapshot(self.client, [prefix])
        self.requests += 1
        self.assigned = {}
        self._apply(entries, prefix)
        self._kick.clear()  # a restarted agent leaves failed units failed
        watch = PrefixWatch(self.client, [prefix], revision + 1)
        last_pass = 0.0
        dirty = True
        try:
            while not self.stop_event.is_set():
                deadline = self._fence_deadline()
                now = time.monotonic()
                if now >= deadline:
                    raise _Fenced("machine lease not confirmed in time")
                self.runner.fence(deadline)  # before starting anything in this session
                # a pass on every change, and a look at the runner every UNIT_AGENT_POLL
                if dirty or now - last_pass >= policy.UNIT_AGENT_POLL:
                    self._reconcile()
                    self._publish()
                    last_pass, dirty = now, False
                try:
                    item = watch.events.get(timeout=policy.UNIT_AGENT_TICK)
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
                    log.warning("unit agent: unreadable assignment %s", ch.key)
                    continue
                old = self.assigned.get(name)
                if new.desired == DesiredState.LAUNCHED and (
                    old is None or old.desired != DesiredState.LAUNCHED or old.starts != new.starts
                ):
                    self._kick.add(name)  # asked to start (again): a failed unit too
                self.assigned[name] = new

    def _fence(self, why: str) -> None:
        if not self.fenced.is_set():
            log.warning("unit agent: %s: stopping every unit (fenced)", why)
        self.fenced.set()
        self.runner.fence(0.0)
        for name in self.runner.loaded():
            self.runner.stop(name)
        self.assigned = {}
        self.published = {}

    # --- reconcile -------------------------------------------------------------------

    def _text(self, digest: str) -> str | None:
        if digest not in self._texts:
            value, _ = self.client.get(self.ks.unit_file(digest))
            self.requests += 1
            if value is None:
                return None
            self._texts[digest] = value.decode("utf-8")
        return self._texts[digest]

    def _reconcile(self) -> None:
        loaded = set(self.runner.loaded())
        for name, a in sorted(self.assigned.items()):
            st = self.runner.status(name) if name in loaded else None
            running = st is not None and st.active in RUNNING_STATES
            if st is None or st.hash != a.hash:
                if running:
                    log.info("unit agent: stopping %s (new content %s)", name, a.hash[:7])
                    self.runner.stop(name)  # new content: stop first, load when stopped
                    continue
                text = self._text(a.hash)
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
            kicked = name in self._kick
            self._kick.discard(name)
            if (
                a.desired == DesiredState.LAUNCHED
                and not running
                and (st.active != "failed" or kicked)
            ):
                log.info("unit agent: starting %s (was %s/%s)", name, st.active, st.sub)
                self.runner.start(name)
            elif a.desired != DesiredState.LAUNCHED and running and st.active != "deactivating":
                log.info("unit agent: stopping %s (desired %s)", name, a.desired)
                self.runner.stop(name)
        for name in sorted(loaded - set(self.assigned)):
            st = self.runner.status(name)
            if st.active in RUNNING_STATES:
                if st.active != "deactivating":
                    log.info("unit agent: stopping %s (no longer assigned here)", name)
                    self.runner.stop(name)
                continue
            self.runner.unload(name)
            if name not in self.runner.loaded():
                self._forget(name)

    def _sandbox(self, name: str) -> str | None:
        manager = self.host.sandboxes()
        sb = sandbox_name(self.host.machine_id, name)
        if manager is None:
            self._problems[name] = "this machine has no overlay for Sandbox= units"
            return None
        if name not in self._sandbox_ips:
            try:
                existing = getattr(manager, "get", None)
                try:  # a sandbox this machine made before the agent restarted
                    ip = existing(sb).ip if existing else None
                except Exception:
                    ip = None
                self._sandbox_ips[name] = ip or manager.create(sb)
            except Exception as exc:
                log.warning("unit agent: sandbox for %s: %s", name, exc)
                self._problems[name] = f"cannot make its sandbox: {exc}"
                return None
        return sb

    def _forget(self, name: str) -> None:
        """A unit left this machine: drop its sandbox and the state we published."""
        manager = self.host.sandboxes()
        if manager is not None:
            # also after a restart, when we no longer remember making it
            with contextlib.suppress(Exception):
                manager.delete(sandbox_name(self.host.machine_id, name))
        self._sandbox_ips.pop(name, None)
        self.published.pop(name, None)
        self.requests += 1
        self.client.delete(self.ks.unit_state(name, self.host.machine_id))
        self._seen.pop(name, None)
        self._journal_seq.pop(name, None)

    # --- publish ---------------------------------------------------------------------

    def _state(self, name: str, a: Assignment, st: RunStatus) -> str:
        return UnitState(
            name=name,
            machine_id=self.host.machine_id,
            load=st.load,
            active=st.active,
            sub=st.sub,
            since=st.since,
            reason=st.reason,
            hash=a.hash,
            sandbox_ip=self._sandbox_ips.get(name),
        ).to_json()

    def _publish(self) -> None:
        lease = self.host.lease_id()
        t = self.client.transactions
        pending: list[tuple[str, str, str]] = []
        for name, a in sorted(self.assigned.items()):
            st = self.runner.status(name)
            if st.load != "loaded":
                if name not in self._problems:
                    continue
                st = RunStatus("error", "failed", "failed", 0.0, self._problems[name])
            seen = (st, a.hash, self._sandbox_ips.get(name))
            if self._seen.get(name) == seen and name in self.published:
                continue  # nothing new: skip building the JSON
            self._seen[name] = seen
            value = self._state(name, a, st)
            if self.published.get(name) != value:
                pending.append((name, self.ks.unit_state(name, self.host.machine_id), value))
        for i in range(0, len(pending), policy.UNIT_STATES_PER_TXN):
            chunk = pending[i : i + policy.UNIT_STATES_PER_TXN]
            self._publish_chunk(chunk, lease, t)
        now = time.monotonic()
        if now - self._journal_at >= policy.JOURNAL_PUBLISH_INTERVAL:
            self._journal_at = now
            for name in sorted(self.assigned):
                seq, lines = self.runner.journal(name)
                if seq != self._journal_seq.get(name, 0):
                    key = self.ks.unit_journal(name)
                    akey = self.ks.assignment(self.host.machine_id, name)
                    self.requests += 1
                    self.client.transaction(
                        compare=[t.version(akey) > 0],
                        success=[t.put(key, json.dumps({"seq": seq, "lines": lines}), lease=lease)],
                        failure=[],
                    )
                    self._journal_seq[name] = seq

    def _publish_chunk(self, chunk: list[tuple[str, str, str]], lease: int, t: Any) -> None:
        me = self.host.machine_id
        compares = [t.version(self.ks.assignment(me, n)) > 0 for n, _, _ in chunk]
        self.requests += 1
        ok, _ = self.client.transaction(
            compare=compares,
            success=[t.put(key, value, lease=lease) for _, key, value in chunk],
            failure=[],
        )
        if ok:
            for name, _, value in chunk:
                self.published[name] = value
            return
        for name, key, value in chunk:  # some assignment is gone: one by one
            self.requests += 1
            ok, _ = self.client.transaction(
                compare=[t.version(self.ks.assignment(me, name)) > 0],
                success=[t.put(key, value, lease=lease)],
                failure=[],
            )
            if ok:
                self.published[name] = value
