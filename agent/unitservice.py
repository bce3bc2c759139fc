"""How the unit engine and the unit agent plug into the node agent (agent/daemon.py).

``install(agent)`` adds one component that, once the agent has joined the cluster,
starts the engine (which campaigns for leadership) and the unit agent (which runs this
machine's units with the runner that fits: systemd when it is PID 1, else built-in).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from agent import policy
from agent.engine import Engine
from agent.registration import Registration
from agent.runner import BuiltinRunner, Runner, SystemdRunner, systemd_is_pid1
from agent.unitagent import SandboxManager, UnitAgent
from vulcano.keyspace import Keyspace

log = logging.getLogger(__name__)


class AgentHost:
    """The node agent seen through the unit agent's ``UnitHost`` protocol."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.machine_id: str = agent.machine_id
        self.hostname: str = getattr(agent.machine, "hostname", "") or ""
        self.keyspace: Keyspace = agent.keyspace
        self.state_dir: Path = agent.state_dir
        self.lease_ttl: int = int(agent.registration.ttl)

    def etcd_client(self) -> Any:
        return self.agent.etcd()

    def lease_id(self) -> int:
        return int(self.agent.registration.lease_id or 0)

    def lease_deadline(self) -> float:
        """Monotonic time until which the machine lease is certainly held."""
        registration: Registration = self.agent.registration
        return registration.held_until()

    def sandboxes(self) -> SandboxManager | None:
        if getattr(self.agent, "overlay", None) is None:
            return None
        manager: SandboxManager = self.agent.sandboxes
        return manager


class UnitService:
    """The agent component: engine + unit agent."""

    def __init__(self, runner: Runner | None = None, engine: bool = True) -> None:
        self._runner = runner
        self._with_engine = engine
        self.engine: Engine | None = None
        self.units: UnitAgent | None = None

    def start(self, agent: Any) -> None:
        host = AgentHost(agent)
        runner = self._runner
        if runner is None:
            runner = SystemdRunner() if systemd_is_pid1() else BuiltinRunner(host.state_dir)
        if self._with_engine:
            ttl = min(policy.ENGINE_LEASE_TTL, host.lease_ttl)
            self.engine = Engine(agent.etcd(), agent.keyspace, agent.machine_id, lease_ttl=ttl)
            self.engine.start()
        self.units = UnitAgent(host, runner)
        self.units.start()

    def stop(self) -> None:
        started = time.monotonic()
        if self.units is not None:
            self.units.stop()
        if self.engine is not None:
            self.engine.stop()
        log.info("units: engine and unit agent stopped in %.1fs", time.monotonic() - started)


def install(agent: Any) -> UnitService:
    service = UnitService()
    agent.add_component(service)
    return service
