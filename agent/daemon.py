"""The running node agent: membership first, then the components that plug into it.

The unit engine plugs in as a component::

    class UnitRunner:
        def start(self, agent: Agent) -> None: ...   # start threads; return quickly
        def stop(self) -> None: ...                  # called once, on shutdown

    agent.add_component(UnitRunner())

and reads `agent.machine_id`, `agent.public_ip`, `agent.metadata`, `agent.keyspace`,
`agent.state_dir`, `agent.etcd()`, `agent.registration_alive()` (fencing: False means our
machine record may be gone, so stop units), `agent.stop_event` and `agent.sandboxes`.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any, Protocol

from agent import policy
from agent.config import AgentConfig
from agent.machine import machine_id
from agent.overlay import Overlay
from agent.registration import Registration
from agent.sandbox import SandboxManager
from agent.state import NodeState, StateLock
from vulcano import etcd as vulcano_etcd
from vulcano.records import Machine

log = logging.getLogger(__name__)


class Component(Protocol):
    """Something the agent starts after joining the cluster and stops on shutdown."""

    def start(self, agent: Agent) -> None: ...

    def stop(self) -> None: ...


class Agent:
    """One cluster node: its identity, its etcd client, its lease, its components."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.state_dir = config.state_dir
        self.machine_id = config.machine_id or machine_id(config.state_dir)
        self.public_ip = config.public_ip
        self.metadata: dict[str, str] = dict(config.metadata)
        self.keyspace = config.keyspace
        self.stop_event = threading.Event()
        self.machine = Machine(
            id=self.machine_id,
            public_ip=self.public_ip,
            hostname=socket.gethostname(),
            metadata=self.metadata,
        )
        self.registration = Registration(
            self.etcd, self.keyspace, self.machine, config.ttl, self.state_dir, self.stop_event
        )
        self.sandboxes = SandboxManager(self.state_dir, client=self.etcd)
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._components: list[Component] = []
        self._started: list[Component] = []
        self._threads: list[threading.Thread] = []
        self._lock = StateLock(self.state_dir)
        self.ready = threading.Event()  # set once registered and every component started
        self.overlay: Overlay | None = None
        if config.overlay:
            self.overlay = Overlay()
            self.add_component(self.overlay)

    # -- what components use -----------------------------------------------------------
    def etcd(self) -> Any:
        """The agent's etcd client (one per agent, shared by every component)."""
        with self._client_lock:
            if self._client is None:
                self._client = vulcano_etcd.connect(self.config.etcd_endpoints)
            return self._client

    def registration_alive(self) -> bool:
        """True while our machine lease is known to be held."""
        return self.registration.alive()

    def add_component(self, component: Component) -> None:
        """Register a component; started after joining (or now, if already running)."""
        self._components.append(component)
        if self.ready.is_set():
            self._start_component(component)

    def spawn(self, name: str, target: Any) -> threading.Thread:
        """Start a daemon thread that the agent joins on shutdown."""
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Lock the state dir, join the cluster (waiting out etcd outages), start components.

        Raises MachineConflict when a live agent holds our id or IP.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock.acquire()
        NodeState(
            machine_id=self.machine_id,
            public_ip=self.public_ip,
            etcd_endpoints=self.config.etcd_endpoints,
            prefix=self.config.prefix,
            **_kept_overlay_fields(NodeState.load(self.state_dir)),
        ).save(self.state_dir)
        self._register_until_done()
        if self.stop_event.is_set():
            return
        self.spawn("keepalive", self.registration.keep_alive)
        for component in self._components:
            self._start_component(component)
        self.ready.set()

    def _register_until_done(self) -> None:
        vulcano_etcd.retry_while_unreachable(
            self.registration.register, "registering", stop=self.stop_event, log=log.warning
        )

    def _start_component(self, component: Component) -> None:
        component.start(self)
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
        deadline = time.monotonic() + policy.SUBPROCESS_TIMEOUT
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None
        self._lock.release()


def _kept_overlay_fields(previous: NodeState | None) -> dict[str, Any]:
    if previous is None:
        return {}
    return {"network": previous.network, "subnet": previous.subnet, "mtu": previous.mtu}
