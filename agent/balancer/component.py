"""The balancer component: endpoints in etcd → the configuration its server runs.

One loop, in the thread that calls `run`: it starts the server on a configuration that
answers 503, takes a snapshot of ``endpoints/`` and watches it, and after every batch of
changes (or when a settling addition is due) decides the target set, renders it, and
applies it when the text changed. A lost watch is said (log, ``watch_restarts`` in the
status) and followed by a new snapshot; while etcd is unreachable the live
configuration stays as it is. A change that cannot be applied leaves the last good one
live and turns the status ``stale`` with the reason.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from typing import Any

from agent import policy
from agent.balancer.backends import Backend, Listen, backends_from
from agent.balancer.debounce import Debouncer
from agent.balancer.render import (
    Slots,
    fresh_slots,
    plan_slots,
    render_haproxy,
    render_nginx,
    runtime_commands,
)
from agent.balancer.servers import ConfigRejected, HaproxyServer, NginxServer, ServerFailed
from vulcano.etcd import refresh_lease
from vulcano.keyspace import Keyspace
from vulcano.records import BALANCER_OK as OK
from vulcano.records import BALANCER_STALE as STALE
from vulcano.records import BalancerStatus
from vulcano.watch import PrefixWatch, Resync, snapshot

log = logging.getLogger(__name__)


class Balancer:
    """Keeps one server's configuration equal to the healthy endpoints of ``selector``."""

    def __init__(
        self,
        client: Any,
        keyspace: Keyspace,
        server: NginxServer | HaproxyServer,
        *,
        selector: str,
        listen: Listen,
        machine_id: str,
        name: str | None = None,
        port: str | None = None,
        allow_empty: bool = False,
        settle: float = policy.BALANCER_SETTLE,
        settle_max: float = policy.BALANCER_SETTLE_MAX,
        status_ttl: int = policy.BALANCER_STATUS_TTL,
    ) -> None:
        self.client = client
        self.ks = keyspace
        self.server = server
        self.selector = selector
        self.listen = listen
        self.port = port
        self.allow_empty = allow_empty
        self.status_ttl = status_ttl
        self.stop_event = threading.Event()
        self.debouncer: Debouncer[Backend] = Debouncer(settle, max(settle, settle_max))
        self.records: dict[str, bytes] = {}
        self.applied: frozenset[Backend] | None = None  # what the live config serves
        self.live_text: str | None = None
        self.slots: Slots = ()
        # A test hook: text put into the rendered configuration as is (an invalid
        # directive here proves a refused check never replaces the live config).
        self.extra = ""
        self.status = BalancerStatus(
            name=name or selector,
            machine_id=machine_id,
            selector=selector,
            kind=server.kind,
            listen=listen.haproxy(),
        )
        self._wake_at: float | None = None
        self._rejected_text: str | None = None
        self._refusing = False
        self._logged_skips: set[str] = set()
        self._lease: Any = None
        self._status_dirty = True
        self._lease_refresh_at = 0.0
        self._status_retry_at = 0.0
        self._status_failing = False
        self._next_restart = 0.0
        self._apply_retry_at = 0.0

    @property
    def status_key(self) -> str:
        return self.ks.balancer(self.status.name, self.status.machine_id)

    # -- the loop ----------------------------------------------------------------------
    def run(self) -> None:
        """Serve until `stop`; raises only when the server cannot start at all."""
        try:
            self._apply(frozenset())  # answers 503 until the first snapshot
            if self.live_text is None:
                raise ServerFailed(f"{self.server.kind} could not start: {self.status.error}")
            delays = policy.BALANCER_RETRY.delays()
            while not self.stop_event.is_set():
                try:
                    self._session()
                    delays = policy.BALANCER_RETRY.delays()
                except Resync as exc:
                    if self.stop_event.is_set():
                        break
                    self.status.watch_restarts += 1
                    self._status_dirty = True
                    log.warning("balancer: endpoint watch lost (%s); taking a new snapshot", exc)
                except Exception as exc:
                    log.warning(
                        "balancer: cannot read the endpoints (%s); the live configuration "
                        "stays, retrying",
                        exc,
                    )
                    self._publish_status()
                    self.stop_event.wait(next(delays))
        finally:
            self._shutdown()

    def stop(self) -> None:
        self.stop_event.set()

    def _session(self) -> None:
        revision, [entries] = snapshot(self.client, [self.ks.endpoints])
        self.records = {c.key: c.value for c in entries if c.value is not None}
        self._reconcile()
        watch = PrefixWatch(self.client, [self.ks.endpoints], revision + 1)
        try:
            while not self.stop_event.is_set():
                timeout = policy.BALANCER_TICK
                if self._wake_at is not None:
                    timeout = max(0.0, min(timeout, self._wake_at - time.monotonic()))
                items: list[Any] = []
                with contextlib.suppress(queue.Empty):
                    items.append(watch.events.get(timeout=timeout))
                    while True:
                        items.append(watch.events.get_nowait())
                for item in items:
                    if isinstance(item, Resync):
                        raise item
                    for change in item:
                        if change.value is None:
                            self.records.pop(change.key, None)
                        else:
                            self.records[change.key] = change.value
                self._keep_server_alive()
                self._reconcile()
                self._publish_status()
        finally:
            watch.cancel()

    # -- deciding ----------------------------------------------------------------------
    def _reconcile(self) -> None:
        desired, skipped = backends_from(
            self.records.items(), self.ks.endpoints, self.selector, self.port
        )
        shown = [f"{s.key}: {s.reason}" for s in skipped]
        for line in shown:
            if line not in self._logged_skips:
                log.warning("balancer: skipping endpoint %s", line)
        self._logged_skips = set(shown)
        if shown != self.status.skipped:
            self.status.skipped = shown
            self._status_dirty = True
        decision = self.debouncer.decide(self.applied, desired, time.monotonic())
        self._wake_at = decision.wake_at
        # a stale status is tried again (now and then): a different render may apply
        retry = self.status.status == STALE and time.monotonic() >= self._apply_retry_at
        if decision.target != self.applied or retry:
            self._apply(decision.target)

    def _render(self, target: frozenset[Backend]) -> tuple[str, Slots, list[str] | None]:
        """(text, slots, runtime commands or None when a start or reload is needed)."""
        if isinstance(self.server, HaproxyServer):
            started = self.live_text is not None
            plan = plan_slots(self.slots, target)
            slots = plan.slots if started else fresh_slots(target)
            text = render_haproxy(slots, self.listen, self.server.paths, self.extra)
            runtime = runtime_commands(plan.changes) if started and plan.fits else None
            return text, slots, runtime or None
        text = render_nginx(target, self.listen, self.server.paths, self.extra)
        return text, (), None

    # -- applying ----------------------------------------------------------------------
    def _apply(self, target: frozenset[Backend]) -> None:
        if not target and self.applied and not self.allow_empty:
            if not self._refusing:
                self._stale(
                    f"refusing to replace {len(self.applied)} backend(s) with none "
                    "(every endpoint was withdrawn); the last good configuration stays "
                    "live (--allow-empty allows it)"
                )
            self._refusing = True
            return
        self._refusing = False
        text, slots, runtime = self._render(target)
        if text == self.live_text:
            self._applied(target, slots, text)
            return
        if text == self._rejected_text:
            return  # refused already; waits for a different change
        server = self.server
        self._apply_retry_at = time.monotonic() + policy.BALANCER_APPLY_RETRY
        try:
            server.staged.write_text(text)
            server.check(server.staged)
            os.replace(server.staged, server.live)
        except (ConfigRejected, OSError) as exc:
            with contextlib.suppress(OSError):
                server.staged.unlink()
            self._rejected_text = text
            self.status.rejected += 1
            log.error("balancer: new configuration not applied, the last good one stays: %s", exc)
            self._stale(str(exc))
            return
        self._rejected_text = None
        try:
            if self.live_text is None or not server.alive():
                server.start(text)
            elif runtime is not None and isinstance(server, HaproxyServer):
                try:
                    server.runtime(runtime)
                    self.status.runtime_changes += sum(
                        1 for c in runtime if c.endswith(("state maint", "state ready"))
                    )
                except ServerFailed as exc:
                    log.warning("balancer: %s; reloading instead", exc)
                    server.reload(text)
                    self.status.reloads += 1
            else:
                server.reload(text)
                self.status.reloads += 1
        except ServerFailed as exc:
            log.error("balancer: %s; the last good configuration stays", exc)
            if self.live_text is not None:  # so that a restart serves it too
                with contextlib.suppress(OSError):
                    server.staged.write_text(self.live_text)
                    os.replace(server.staged, server.live)
            self._stale(str(exc))
            return
        self.status.renders += 1
        self.status.since = time.time()
        self.status.server_pid = server.pid or 0
        log.info(
            "balancer: serving %d backend(s) for %s (reloads %d, runtime changes %d)",
            len(target),
            self.selector,
            self.status.reloads,
            self.status.runtime_changes,
        )
        self._applied(target, slots, text)

    def _applied(self, target: frozenset[Backend], slots: Slots, text: str) -> None:
        self.applied = target
        self.slots = slots
        self.live_text = text
        backends = [b.hostport() for b in sorted(target)]
        if self.status.status != OK or self.status.backends != backends:
            self._status_dirty = True
        self.status.status = OK
        self.status.error = ""
        self.status.backends = backends

    def _stale(self, why: str) -> None:
        self.status.status = STALE
        self.status.error = why
        self._status_dirty = True
        self._publish_status()

    def _keep_server_alive(self) -> None:
        """A server that died is started again on the last good configuration."""
        if self.live_text is None or self.server.alive():
            return
        now = time.monotonic()
        if now < self._next_restart:
            return
        self._next_restart = now + policy.BALANCER_RETRY.maximum
        log.error("balancer: %s exited; starting it again", self.server.kind)
        try:
            self.server.start(self.live_text)
        except ServerFailed as exc:
            self._stale(str(exc))
            return
        self.status.server_pid = self.server.pid or 0
        self._status_dirty = True

    # -- the status record ---------------------------------------------------------------
    def _publish_status(self) -> None:
        """Write the status when it changed; keep its lease alive (a new one if lost)."""
        now = time.monotonic()
        refresh_due = self._lease is not None and now >= self._lease_refresh_at
        if now < self._status_retry_at or not (self._status_dirty or refresh_due):
            return
        every = self.status_ttl / policy.KEEPALIVE_DIVISOR
        try:
            if refresh_due:
                if refresh_lease(self.client, self._lease.id) == 0:
                    self._lease = None
                self._lease_refresh_at = now + every
            if self._lease is None:
                self._lease = self.client.lease(self.status_ttl)
                self._lease_refresh_at = now + every
                self._status_dirty = True
            if self._status_dirty:
                self.client.put(self.status_key, self.status.to_json(), lease=self._lease)
                self._status_dirty = False
            if self._status_failing:
                log.info("balancer: status published again")
            self._status_failing = False
        except Exception as exc:
            (log.debug if self._status_failing else log.warning)(
                "balancer: status not published: %s", exc
            )
            self._status_failing = True
            # a lease etcd lost (or we cannot tell) is replaced; the old one expires
            self._lease = None
            self._status_dirty = True
            self._status_retry_at = now + policy.BALANCER_STATUS_RETRY

    def _shutdown(self) -> None:
        self.server.stop()
        if self._lease is not None:
            with contextlib.suppress(Exception):
                self.client.delete(self.status_key)
            with contextlib.suppress(Exception):
                self._lease.revoke()
