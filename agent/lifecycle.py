"""The node agent's lifecycle: lock the state dir, join the cluster, run components, leave.

`agent.app.build` makes the Agent and hands it its components (the overlay, the units);
the Agent only starts them once this machine has joined (its record is on a lease) and
stops them, last started first, before it leaves. It knows nothing of what they do.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from agent import policy
from agent.membership.registration import Registration
from agent.statedir import NodeState, StateLock
from vulcano import etcd as vulcano_etcd
from vulcano import etcdhttp

log = logging.getLogger(__name__)


class Component(Protocol):
    """Something the agent starts after joining the cluster and stops on shutdown."""

    def start(self) -> None:
        """Start threads and return quickly; raise when the component can never work."""

    def stop(self) -> None:
        """Called once, on shutdown."""


class EtcdConnection:
    """The agent's one etcd client, made on first use and shared by every component."""

    def __init__(self, endpoints: str, tls: vulcano_etcd.TLSFiles | None = None) -> None:
        self._endpoints = endpoints
        self._tls = tls
        self._client: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = etcdhttp.connect(self._endpoints, tls=self._tls)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


class Threads:
    """Daemon threads the agent joins on shutdown."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []

    def spawn(self, name: str, target: Callable[[], None]) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class Agent:
    """One cluster node: its state dir, its membership, its components."""

    def __init__(
        self,
        node: NodeState,
        state_dir: Path,
        registration: Registration,
        etcd: EtcdConnection,
        threads: Threads,
        stop_event: threading.Event,
    ) -> None:
        self.node = node
        self.state_dir = state_dir
        self.registration = registration
        self.etcd = etcd
        self.threads = threads
        self.stop_event = stop_event
        self._components: list[Component] = []
        self._started: list[Component] = []
        self._lock = StateLock(state_dir)
        self.ready = threading.Event()  # set once registered and every component started

    @property
    def machine_id(self) -> str:
        return self.node.machine_id

    def registration_alive(self) -> bool:
        """True while our machine lease is known to be held."""
        return self.registration.alive()

    def add_component(self, component: Component) -> None:
        """Register a component; started after joining (or now, if already running)."""
        self._components.append(component)
        if self.ready.is_set():
            self._start_component(component)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Lock the state dir, join the cluster (waiting out etcd outages), start components.

        Raises MachineConflict when a live agent holds our id or IP.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock.acquire()
        self.node.save(self.state_dir)
        vulcano_etcd.retry_while_unreachable(
            self.registration.register, "registering", stop=self.stop_event, log=log.warning
        )
        if self.stop_event.is_set():
            return
        self.threads.spawn("keepalive", self.registration.keep_alive)
        for component in self._components:
            self._start_component(component)
        self.ready.set()

    def _start_component(self, component: Component) -> None:
        component.start()
        self._started.append(component)

    def run(self) -> None:
        """Start, then block until stop_event is set, then shut down."""
        try:
            self.start()
            self.stop_event.wait()
        finally:
            self.shutdown()

    def stop(self) -> None:
        self.stop_event.set()

    def shutdown(self) -> None:
        """Stop components (last started first), remove the machine record, release."""
        self.stop_event.set()
        for component in reversed(self._started):
            try:
                component.stop()
            except Exception:
                log.exception("stopping %r failed", component)
        self._started.clear()
        self.registration.deregister()
        self.threads.join(policy.THREAD_JOIN_TIMEOUT)
        self.etcd.close()
        self._lock.release()
