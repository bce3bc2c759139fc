"""Checks added at runtime: ``checks/<unit>/<name>`` (`vulcano check add`), watched.

One snapshot, then a watch (vulcano/watch.py); a broken watch starts over. A template's
checks (``checks/web@.service/``) apply to each of its instances, beside the instance's
own.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from agent import policy
from vulcano import unitnames
from vulcano.endpoints import CheckSpec
from vulcano.keyspace import Keyspace
from vulcano.watch import Change, PrefixWatch, Resync, snapshot

log = logging.getLogger(__name__)


class RuntimeChecks:
    """The runtime checks of every unit, kept up to date by ``run`` (a thread's target)."""

    def __init__(
        self,
        client: Callable[[], Any],
        keyspace: Keyspace,
        on_change: Callable[[], None],
        stop: threading.Event,
    ) -> None:
        self._client = client
        self.ks = keyspace
        self._on_change = on_change
        self._stop = stop
        self._lock = threading.Lock()
        self._checks: dict[str, dict[str, CheckSpec]] = {}  # unit -> name -> check

    def of(self, name: str) -> dict[str, CheckSpec]:
        """The runtime checks of unit ``name``: its template's, then its own (which win)."""
        template = unitnames.parse_name(name).template
        with self._lock:
            out = dict(self._checks.get(template, {})) if template else {}
            out.update(self._checks.get(name, {}))
        return out

    def run(self) -> None:
        delays = policy.CHECKS_WATCH_RETRY.delays()
        prefix = self.ks.checks
        while not self._stop.is_set():
            try:
                client = self._client()
                revision, [entries] = snapshot(client, [prefix])
                checks: dict[str, dict[str, CheckSpec]] = {}
                self._apply(checks, entries)
                with self._lock:
                    self._checks = checks
                self._on_change()
                watch = PrefixWatch(client, [prefix], revision + 1)
                delays = policy.CHECKS_WATCH_RETRY.delays()
                try:
                    self._follow(watch)
                finally:
                    watch.cancel()
            except Resync as exc:
                if not self._stop.is_set():
                    log.info("runtime checks: resync (%s)", exc)
            except Exception as exc:
                log.warning("runtime checks: %s; retrying", exc)
                self._stop.wait(next(delays))

    def _follow(self, watch: PrefixWatch) -> None:
        while not self._stop.is_set():
            try:
                item = watch.events.get(timeout=policy.SERVICES_TICK)
            except queue.Empty:
                continue
            if isinstance(item, Resync):
                raise item
            with self._lock:
                self._apply(self._checks, item)
            self._on_change()

    def _apply(self, checks: dict[str, dict[str, CheckSpec]], changes: list[Change]) -> None:
        plen = len(self.ks.checks)
        for ch in changes:
            unit, _, name = ch.key[plen:].partition("/")
            if not unit or not name:
                continue
            if ch.value is None:
                checks.get(unit, {}).pop(name, None)
                continue
            try:
                spec = replace(CheckSpec.from_json(ch.value), name=name)
            except (ValueError, KeyError, TypeError):
                log.warning("runtime checks: unreadable %s", ch.key)
                continue
            checks.setdefault(unit, {})[name] = spec
