"""The monitor component: publishes this machine's sample every interval, on its lease.

The sample (`vulcano.heartbeat.MachineSample`) goes to ``samples/<machine-id>`` on the
machine lease, so a machine that stops (or loses its lease) loses its sample with its
record. The engine does not watch ``samples/``, so a sample never wakes it, and no agent
watches it either. A failed write (etcd unreachable, the lease just lost and not yet
renewed) is logged and tried again at the next interval; a clean stop deletes the sample.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from agent import policy
from agent.monitor import readings
from vulcano.heartbeat import MachineSample
from vulcano.keyspace import Keyspace

log = logging.getLogger(__name__)

# name -> (active, sub) of each unit this machine reports on
UnitStates = Callable[[], Mapping[str, tuple[str, str]]]


class SampledMachine(Protocol):
    """What the monitor needs of its node: who it is and the lease it writes on."""

    @property
    def machine_id(self) -> str: ...
    @property
    def hostname(self) -> str: ...
    @property
    def public_ip(self) -> str: ...
    @property
    def keyspace(self) -> Keyspace: ...

    def etcd_client(self) -> Any: ...

    def lease_id(self) -> int:
        """The machine lease (0 while there is none: nothing is published then)."""


def _no_units() -> Mapping[str, tuple[str, str]]:
    return {}


class Monitor:
    """Samples the machine every ``interval`` seconds and publishes the sample."""

    def __init__(
        self,
        machine: SampledMachine,
        state_dir: Path,
        *,
        interval: float = policy.SAMPLE_INTERVAL,
        units: UnitStates | None = None,
        proc: Path = readings.PROC,
    ) -> None:
        self.machine = machine
        self.state_dir = state_dir
        self.interval = interval
        self.units = units or _no_units
        self.proc = proc
        self.stop_event = threading.Event()
        self.published = threading.Event()  # set after the first sample landed
        self.failing = False  # the last sample could not be written
        self.last: MachineSample | None = None
        self._previous_cpu: readings.CpuTimes | None = None
        self._thread: threading.Thread | None = None

    @property
    def key(self) -> str:
        return self.machine.keyspace.sample(self.machine.machine_id)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and delete the sample (it would go with the lease anyway).

        Not while etcd does not answer our writes: the lease takes the sample with it,
        and the agent's shutdown need not wait out etcd's failover once more.
        """
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=policy.THREAD_JOIN_TIMEOUT)
        if self.failing:
            return
        try:
            self.machine.etcd_client().delete(self.key)
        except Exception as exc:
            log.warning("monitor: could not delete the sample (it goes with the lease): %s", exc)

    def run(self) -> None:
        """Sample, publish, wait one interval; until stopped (thread body)."""
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                self.publish_once()
                if self.failing:
                    log.info("monitor: samples published again")
                self.failing = False
            except Exception as exc:
                # once per outage: an etcd outage would otherwise log every interval
                (log.debug if self.failing else log.warning)(
                    "monitor: sample not published (next in %.0fs): %s", self.interval, exc
                )
                self.failing = True
            self.stop_event.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def sample(self) -> MachineSample:
        """Read the machine now and make its sample (also the CPU reference for the next)."""
        now = readings.read(self.state_dir, self.proc)
        sample = readings.build_sample(
            machine_id=self.machine.machine_id,
            hostname=self.machine.hostname,
            public_ip=self.machine.public_ip,
            at=time.time(),
            readings=now,
            previous_cpu=self._previous_cpu,
            units=self.units(),
        )
        self._previous_cpu = now.cpu
        return sample

    def publish_once(self) -> bool:
        """One sample written on the machine lease; False when there is no lease now."""
        sample = self.sample()
        lease = self.machine.lease_id()
        if not lease:
            return False
        self.machine.etcd_client().put(self.key, sample.to_json(), lease=lease)
        self.last = sample
        self.published.set()
        return True
