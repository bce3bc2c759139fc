"""Unit-engine test clusters: machines on real etcd leases, engines and machine units.

``Member`` is a minimal machine presence (the record at keyspace.machine(id) on a lease,
refreshed by a thread) that satisfies ``agent.units.machine_units.Membership``; tests and
the benchmark use it to run many machines in one process. Whole agents in network namespaces
use the node agent's own membership instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.units.engine import Engine
from agent.units.machine_units import MachineUnits
from agent.units.runners.base import Runner
from agent.units.runners.builtin import BuiltinRunner
from vulcano import etcd as vulcano_etcd
from vulcano.errors import MachineDecommissioned
from vulcano.keyspace import Keyspace
from vulcano.lab.leases import LeaseKeeper
from vulcano.records import Machine, UnitState
from vulcano.registry import Registry


class Member:
    """One machine: its record on a lease, kept alive until ``pause()`` or ``close()``."""

    def __init__(
        self,
        endpoint: str,
        machine_id: str,
        state_dir: Path,
        keyspace: Keyspace | None = None,
        ttl: int = 3,
        metadata: dict[str, str] | None = None,
        public_ip: str = "",
        client: Any = None,
        keeper: LeaseKeeper | None = None,
    ) -> None:
        self.machine_id = machine_id
        self.hostname = machine_id
        self.keyspace = keyspace or Keyspace()
        self.state_dir = state_dir
        self.ttl = ttl
        self.metadata = metadata or {}
        self.public_ip = public_ip
        self._own_client = client is None
        if client is None:
            client = vulcano_etcd.connect(endpoint)
        self.client = client
        self._deadline = 0.0
        self._lease_id = 0
        self.paused = threading.Event()
        self.closed = threading.Event()
        self._thread: threading.Thread | None = None
        self.keeper = keeper  # refreshes the lease on a stream shared with other members

    # Membership
    def etcd_client(self) -> Any:
        return self.client

    def lease_id(self) -> int:
        return self._lease_id

    def lease_deadline(self) -> float:
        return self._deadline

    @property
    def lease_ttl(self) -> int:
        return self.ttl

    def register(self) -> None:
        """Take a lease (reusing the one in state_dir if it is still alive) and the record.

        A machine decommissioned on purpose is refused, as the node agent is.
        """
        marker = self.keyspace.machine_decommissioned(self.machine_id)
        if self.client.get(marker)[1] is not None:
            raise MachineDecommissioned(f"machine {self.machine_id} was removed from the cluster")
        lease_file = self.state_dir / "machine-lease"
        sent = time.monotonic()
        lease_id = 0
        with contextlib.suppress(OSError, ValueError):
            old = int(lease_file.read_text())
            info = self.client.get_lease_info(old)
            if info.TTL > 0:
                lease_id = old
                [resp] = list(self.client.refresh_lease(old))
                if resp.TTL <= 0:
                    lease_id = 0
        if not lease_id:
            lease_id = self.client.lease(self.ttl).id
            lease_file.write_text(str(lease_id))
        record = Machine(
            id=self.machine_id,
            public_ip=self.public_ip,
            hostname=self.hostname,
            metadata=self.metadata,
        )
        self.client.put(self.keyspace.machine(self.machine_id), record.to_json(), lease=lease_id)
        self._lease_id = lease_id
        self._deadline = sent + self.ttl

    def start(self) -> Member:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.register()
        if self.keeper is not None:
            self.keeper.add(self)
            return self
        self._thread = threading.Thread(target=self._keepalive, daemon=True)
        self._thread.start()
        return self

    def kept(self, sent: float, ttl: int) -> None:
        """The shared keeper's answer for our lease (LeaseKeeper)."""
        if self.paused.is_set() or self.closed.is_set():
            return
        if ttl > 0:
            self._deadline = sent + self.ttl
            return
        assert self.keeper is not None
        self.keeper.remove(self)
        with contextlib.suppress(Exception):  # the lease is gone: a new one, a new record
            self.register()
        self.keeper.add(self)

    def _keepalive(self) -> None:
        while not self.closed.wait(self.ttl / 3):
            if self.paused.is_set():
                continue
            sent = time.monotonic()
            try:
                responses = list(self.client.refresh_lease(self._lease_id))
                if responses and responses[0].TTL > 0:
                    self._deadline = sent + self.ttl
                else:
                    self.register()  # the lease is gone: a new one, a new record
            except Exception:  # noqa: S112 - etcd unreachable: the deadline just passes
                continue

    def pause(self) -> None:
        """Stop refreshing the lease, as a machine cut off from etcd would."""
        self.paused.set()
        if self.keeper is not None:
            self.keeper.remove(self)

    def resume(self) -> None:
        self.paused.clear()
        if self.keeper is not None and not self.closed.is_set():
            self.keeper.add(self)

    def close(self, revoke: bool = False) -> None:
        self.closed.set()
        if self.keeper is not None:
            self.keeper.remove(self)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if revoke:
            with contextlib.suppress(Exception):
                self.client.revoke_lease(self._lease_id)
        if self._own_client:
            self.client.close()


class Node:
    """A member with an engine and its machine units, all in this process."""

    def __init__(self, member: Member, runner: Runner | None = None, engine: bool = True) -> None:
        self.member = member
        self.engine = (
            Engine(member.client, member.keyspace, member.machine_id, lease_ttl=member.ttl)
            if engine
            else None
        )
        self.units = MachineUnits(member, runner or BuiltinRunner(member.state_dir))

    def start(self) -> Node:
        self.member.start()
        if self.engine is not None:
            self.engine.start()
        self.units.start()
        return self

    def stop(self, revoke: bool = False) -> None:
        self.units.stop()
        if self.engine is not None:
            self.engine.stop()
        self.member.close(revoke=revoke)


def states(store: Registry) -> dict[str, UnitState]:
    return store.states()


def running_where(store: Registry, names: list[str]) -> dict[str, str] | None:
    """unit → machine when every unit reports active on some machine, else None."""
    st = store.states()
    out = {}
    for n in names:
        s = st.get(n)
        if s is None or s.active != "active" or not s.machine_id:
            return None
        out[n] = s.machine_id
    return out


def pids_of(marker: str) -> list[int]:
    """Processes whose command line contains ``marker`` (a per-test unique word)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if marker.encode() in cmd and stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}:
            out.append(int(entry))
    return out


def main_pids(marker: str) -> list[int]:
    """``pids_of(marker)`` less those whose parent matches too: each copy's main process
    (between fork and exec a shell's child carries the shell's command line)."""
    pids = pids_of(marker)
    found = set(pids)
    return [pid for pid in pids if parent_pid(pid) not in found]


def parent_pid(pid: int) -> int:
    """The parent's pid (0 when the process is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def kill_by_pid(pids: list[int]) -> None:
    """Last-resort cleanup of processes a test started (by id, never by name)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def nodes(
    endpoint: str, base: Path, ids: list[str], ttl: int = 3, **kw: Any
) -> Iterator[list[Node]]:
    started: list[Node] = []
    try:
        for mid in ids:
            started.append(Node(Member(endpoint, mid, base / mid, ttl=ttl, **kw)).start())
        yield started
    finally:
        for n in started:
            n.stop(revoke=True)
