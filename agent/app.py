"""The agent's app factory: `build(config)` wires every component of one node.

The only place that knows every part: membership (the machine record on its lease), the
overlay (when enabled), the units (engine and this machine's units, with their checks
and endpoints), the monitor
(heartbeat samples on the machine lease) and, on TLS, the credentials (reloaded,
renewed, the CRL kept). Each component is handed a small view of the
node that names what it uses (`OverlayNode`, `Membership`, `SampledMachine`), never the
Agent.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import policy
from agent.config import AgentConfig
from agent.credentials import Credentials
from agent.lifecycle import Agent, EtcdConnection, Threads
from agent.membership.hostkeys import read_host_keys
from agent.membership.identity import machine_id
from agent.membership.registration import Registration
from agent.monitor.component import Monitor, UnitStates
from agent.overlay.component import Overlay
from agent.services.component import UnitServices
from agent.statedir import NodeState
from agent.units.component import Units
from agent.units.engine import Engine
from agent.units.machine_units import MachineUnits
from agent.units.runners.base import Runner, systemd_is_pid1
from agent.units.runners.builtin import BuiltinRunner
from agent.units.runners.systemd import SystemdRunner
from vulcano.keyspace import Keyspace
from vulcano.records import Machine


class _OverlayNode:
    """The node as the overlay sees it (`agent.overlay.component.OverlayNode`)."""

    def __init__(
        self,
        machine: Machine,
        keyspace: Keyspace,
        state_dir: Path,
        stop_event: threading.Event,
        etcd: EtcdConnection,
        threads: Threads,
    ) -> None:
        self.machine_id = machine.id
        self.public_ip = machine.public_ip
        self.keyspace = keyspace
        self.state_dir = state_dir
        self.stop_event = stop_event
        self._etcd = etcd
        self._threads = threads

    def etcd(self) -> Any:
        return self._etcd.client()

    def spawn(self, name: str, target: Callable[[], None]) -> threading.Thread:
        return self._threads.spawn(name, target)


class _Membership:
    """The machine's lease as its units and its monitor see it
    (`agent.units.machine_units.Membership`, `agent.monitor.component.SampledMachine`)."""

    def __init__(self, registration: Registration, etcd: EtcdConnection) -> None:
        self._registration = registration
        self._etcd = etcd
        self.machine_id = registration.machine.id
        self.hostname = registration.machine.hostname
        self.public_ip = registration.machine.public_ip
        self.keyspace = registration.keyspace
        self.lease_ttl = float(registration.ttl)

    def etcd_client(self) -> Any:
        return self._etcd.client()

    def lease_id(self) -> int:
        return int(self._registration.lease_id or 0)

    def lease_deadline(self) -> float:
        return self._registration.held_until()


def default_runner(state_dir: Path) -> Runner:
    """systemd's when it is PID 1, else the built-in one."""
    if systemd_is_pid1():
        return SystemdRunner()
    return BuiltinRunner(state_dir)


def build(config: AgentConfig, *, units: bool = True, runner: Runner | None = None) -> Agent:
    """One node agent: membership, the overlay (if configured), the units, the monitor.

    ``units=False`` leaves out the engine and the units (membership tests); ``runner``
    replaces the runner that fits this host.
    """
    state_dir = config.state_dir
    keyspace = config.keyspace
    machine = Machine(
        id=config.machine_id or machine_id(state_dir),
        public_ip=config.public_ip,
        hostname=socket.gethostname(),
        metadata=dict(config.metadata),
        ssh_host_keys=read_host_keys(config.ssh_host_key_dir),
    )
    stop_event = threading.Event()
    etcd = EtcdConnection(config.etcd_endpoints, config.tls)
    threads = Threads()
    registration = Registration(etcd.client, keyspace, machine, config.ttl, state_dir, stop_event)
    node = NodeState(
        machine_id=machine.id,
        public_ip=machine.public_ip,
        etcd_endpoints=config.etcd_endpoints,
        prefix=config.prefix,
        cacert=str(config.tls.cacert) if config.tls else "",
        cert=str(config.tls.cert) if config.tls and config.tls.cert else "",
        key=str(config.tls.key) if config.tls and config.tls.key else "",
    )
    agent = Agent(node, state_dir, registration, etcd, threads, stop_event)

    overlay: Overlay | None = None
    if config.overlay:
        overlay = Overlay(
            _OverlayNode(machine, keyspace, state_dir, stop_event, etcd, threads),
            subnet_ttl=config.subnet_ttl,
            subnet_env_path=config.subnet_env_path,
        )
        agent.add_component(overlay)

    membership = _Membership(registration, etcd)
    unit_states: UnitStates | None = None
    if units:
        engine = Engine(
            etcd.client(),
            keyspace,
            machine.id,
            lease_ttl=min(policy.ENGINE_LEASE_TTL, config.ttl),
        )
        machine_units = MachineUnits(
            membership,
            runner or default_runner(state_dir),
            sandboxes=overlay.sandboxes if overlay is not None else None,
            services=UnitServices(membership),
        )
        agent.add_component(Units(machine_units, engine))
        unit_states = machine_units.reports.states
    agent.add_component(
        Monitor(membership, state_dir, interval=config.sample_interval, units=unit_states)
    )
    if config.tls is not None:
        agent.add_component(
            Credentials(membership, config.tls, state_dir, stop_event, crl_file=config.crl_file)
        )
    return agent
