"""Cluster membership: the machine record on an etcd lease, kept alive by the agent.

The record (keyspace.machine(id)) and the public-IP claim (keyspace.machine_ip(ip)) are
written together in one transaction that only succeeds when neither exists, so two live
agents can never hold the same machine id or public IP. The lease id is remembered in the
state directory: a restarted agent that finds a record on *its own* previous lease knows
the holder is its dead predecessor and replaces it at once; a record on any other lease
is watched for a refresh (proof its holder is alive, so we refuse) or waited out.

A machine decommissioned on purpose (keyspace.machine_decommissioned(id), written by
`vulcano machine remove`) never registers again: the transaction requires that key
absent, and `register` raises MachineDecommissioned. Once `machine remove` has taken the
record away, keep_alive finds its lease gone, is refused, and stops the agent (the stop
event it shares with it): it leaves instead of coming back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import policy
from agent.statedir import read_json, write_json
from vulcano.errors import MachineDecommissioned, VulcanoError
from vulcano.etcd import refresh_lease
from vulcano.keyspace import Keyspace
from vulcano.records import Machine

log = logging.getLogger(__name__)


class MachineConflict(VulcanoError):
    """A live agent already holds this machine id or public IP."""


def lease_remaining(client: Any, lease_id: int) -> int:
    """Seconds the lease has left; <= 0 when it is gone."""
    info = client.get_lease_info(lease_id)
    return int(info.TTL)


class Registration:
    """Registers a Machine and keeps its lease alive; re-registers after losing it."""

    def __init__(
        self,
        client: Callable[[], Any],
        keyspace: Keyspace,
        machine: Machine,
        ttl: int,
        state_dir: Path,
        stop: threading.Event,
    ) -> None:
        self._client = client
        self.keyspace = keyspace
        self.machine = machine
        self.ttl = ttl
        self._state_file = state_dir / "registration.json"
        self._stop = stop
        self.lease_id: int | None = None
        self._deadline = 0.0  # monotonic time until which the lease is known to be held
        self._lock = threading.Lock()
        self.changed = threading.Event()  # set whenever alive() may have flipped
        self.decommissioned = threading.Event()  # set once refused as decommissioned

    # -- state -----------------------------------------------------------------------
    def alive(self) -> bool:
        """True while our lease is known to be held (fencing: false means stop units)."""
        return time.monotonic() < self.held_until()

    def held_until(self) -> float:
        """Monotonic time until which our lease is known to be held (0.0: no lease).

        The send time of the last confirmed refresh (or grant) plus the TTL etcd gave.
        """
        with self._lock:
            return self._deadline if self.lease_id is not None else 0.0

    def _set_held(self, lease_id: int | None, deadline: float) -> None:
        with self._lock:
            self.lease_id = lease_id
            self._deadline = deadline
        self.changed.set()

    def _previous_lease(self) -> int | None:
        data = read_json(self._state_file)
        if isinstance(data, dict) and isinstance(data.get("lease"), int):
            return int(data["lease"])
        return None

    # -- register --------------------------------------------------------------------
    def register(self, deadline: float | None = None) -> None:
        """Write the record on a fresh lease; MachineConflict when a live agent holds it.

        etcd errors propagate (the caller retries with backoff).
        """
        client = self._client()
        ks = self.keyspace
        machine_key = ks.machine(self.machine.id)
        ip_key = ks.machine_ip(self.machine.public_ip)
        marker = ks.machine_decommissioned(self.machine.id)
        previous = self._previous_lease()
        while not self._stop.is_set():
            sent = time.monotonic()
            lease = client.lease(self.ttl)
            # Remembered before the record exists, so a crash right after the transaction
            # still lets the next run recognise the record as its own.
            write_json(self._state_file, {"lease": lease.id})
            ok, _ = client.transaction(
                compare=[
                    client.transactions.version(machine_key) == 0,
                    client.transactions.version(ip_key) == 0,
                    client.transactions.version(marker) == 0,
                ],
                success=[
                    client.transactions.put(machine_key, self.machine.to_json(), lease=lease.id),
                    client.transactions.put(ip_key, self.machine.id, lease=lease.id),
                ],
                failure=[],
            )
            if ok:
                self._set_held(lease.id, sent + lease.ttl)
                log.info("registered machine %s (%s)", self.machine.id, self.machine.public_ip)
                return
            client.revoke_lease(lease.id)
            if client.get(marker)[1] is not None:
                raise MachineDecommissioned(
                    f"machine {self.machine.id} was removed from the cluster on purpose "
                    f"(key {marker}); it does not register again"
                )
            self._resolve_conflict(client, machine_key, ip_key, previous)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("registration did not finish in time")

    def _resolve_conflict(
        self, client: Any, machine_key: str, ip_key: str, previous: int | None
    ) -> None:
        """Return when retrying may succeed; raise MachineConflict when it never will."""
        for key, what in (
            (machine_key, f"machine id {self.machine.id}"),
            (ip_key, f"public IP {self.machine.public_ip}"),
        ):
            value, meta = client.get(key)
            if meta is None:
                continue
            holder = value.decode(errors="replace") if value else "?"
            if meta.lease_id == 0:
                raise MachineConflict(f"{what} is held without a lease (key {key}): remove it")
            if previous is not None and meta.lease_id == previous:
                log.info("replacing the record our previous run left behind (%s)", what)
                client.revoke_lease(meta.lease_id)
                continue
            if self._holder_alive(client, meta.lease_id):
                owner = holder if key == ip_key else _describe(holder)
                raise MachineConflict(
                    f"{what} is already registered by a live agent ({owner}); "
                    "stop that agent or give this one a different "
                    + ("--machine-id" if key == machine_key else "--public-ip")
                )

    def _holder_alive(self, client: Any, lease_id: int) -> bool:
        """Watch the holder's lease: alive when it is refreshed or outlives its TTL.

        etcd reports whole seconds, so a lease refreshed every TTL/3 may read the same
        value every time; a lease still there after its full TTL was certainly refreshed.
        """
        info = client.get_lease_info(lease_id)
        seen = int(info.TTL)
        if seen <= 0:
            return False
        until = time.monotonic() + max(int(info.grantedTTL), 1) + policy.CONFLICT_PROBE_INTERVAL
        while time.monotonic() < until and not self._stop.is_set():
            time.sleep(policy.CONFLICT_PROBE_INTERVAL)
            now_ttl = lease_remaining(client, lease_id)
            if now_ttl <= 0:
                return False
            if now_ttl > seen:
                return True
            seen = now_ttl
        return not self._stop.is_set()

    # -- keep alive ------------------------------------------------------------------
    def keep_alive(self) -> None:
        """Refresh the lease until stopped; re-register whenever it is lost (thread body)."""
        interval = self.ttl / policy.KEEPALIVE_DIVISOR
        delays = policy.DAEMON_RETRY.delays()
        wait = interval
        while not self._stop.wait(max(0.0, min(wait, self._until_deadline()))):
            if self.lease_id is not None and self._until_deadline() <= 0:
                log.warning("machine lease not confirmed within its TTL: presumed lost")
                self._set_held(None, 0.0)
            try:
                sent = time.monotonic()
                ttl = refresh_lease(self._client(), self.lease_id) if self.lease_id else 0
                if ttl > 0:
                    self._set_held(self.lease_id, sent + ttl)
                else:
                    if self.lease_id is not None:
                        log.warning("machine lease expired: registering again")
                    self._set_held(None, 0.0)
                    self.register()
                delays = policy.DAEMON_RETRY.delays()
                wait = interval
            # Back off, but never slower than the keep-alive rate: a lease (or the record
            # etcd restores after a restart) lives one TTL, so a longer wait loses it.
            except MachineDecommissioned as exc:
                log.warning("%s: stopping the agent", exc)
                self.decommissioned.set()
                self._stop.set()
                return
            except MachineConflict as exc:
                log.error("cannot re-register: %s", exc)
                wait = min(next(delays), interval)
            except Exception as exc:
                log.warning("etcd unreachable while keeping the machine lease: %s", exc)
                wait = min(next(delays), interval)

    def _until_deadline(self) -> float:
        with self._lock:
            if self.lease_id is None:
                return float("inf")
            return self._deadline - time.monotonic()

    def deregister(self) -> None:
        """Remove the record at once (revoke the lease)."""
        lease_id = self.lease_id
        self._set_held(None, 0.0)
        if lease_id is None:
            return
        try:
            self._client().revoke_lease(lease_id)
            self._state_file.unlink(missing_ok=True)
        except Exception as exc:
            log.warning(
                "could not remove the machine record (it expires in %ss): %s", self.ttl, exc
            )


def _describe(record: str) -> str:
    try:
        m = Machine.from_json(record)
    except (ValueError, KeyError, TypeError):
        return record
    return f"hostname {m.hostname}, public IP {m.public_ip}"
