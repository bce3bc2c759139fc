"""The other nodes' entries on the VXLAN device, kept in step with their subnet leases.

Two ways to bring the kernel to the leases in etcd, both through the pure `plan`:

- `resync` (full): one snapshot of every lease (with its revision) and the kernel's
  entries read back (netlink dumps of neighbours, FDB and routes). It repairs whatever
  drifted: an entry someone deleted, a change the watch never brought. The overlay runs
  it at start, after a lost watch, after any error, on a new network config, and every
  RESYNC_INTERVAL.
- `follow` (a watch batch): the changed records are folded into the leases of the last
  snapshot, and the plan is the difference between their entries and the ones last
  applied: no etcd range, no kernel dump, so a node joining a cluster of N costs each
  of the others a few netlink requests, not a full read of etcd and of its kernel.

`follow` is only right while the view is whole: after a `resync` that succeeded, with
every change since folded in. Anything that breaks that (a failed apply: the kernel is
then unknown) drops the view, and `follow` refuses (`OutOfStep`) until the next
`resync`. Changes at or below the snapshot's revision are already in it and skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from agent.overlay.datapath import DataPath
from agent.overlay.leases import SubnetLease, read_record
from agent.overlay.plan import DataPathState, Plan, desired_state, plan
from vulcano.errors import VulcanoError
from vulcano.keyspace import Keyspace
from vulcano.network import NetworkConfig
from vulcano.watch import Change, snapshot

log = logging.getLogger(__name__)


class OutOfStep(VulcanoError):
    """The last applied state is unknown: only a full resync can bring the kernel back."""


class Peers:
    """The leases last seen and the entries last applied for them, on one VXLAN device."""

    def __init__(self, keyspace: Keyspace, machine_id: str) -> None:
        self._keyspace = keyspace
        self._machine_id = machine_id
        self._leases: dict[str, SubnetLease] = {}  # by etcd key
        self._revision = 0  # etcd revision the leases reflect
        self._applied: DataPathState | None = None
        self.resyncs = 0  # full resyncs done (for tests and the bench)
        self.followed = 0  # watch batches applied without one

    @property
    def in_step(self) -> bool:
        return self._applied is not None

    def forget(self) -> None:
        """Next time, read etcd and the kernel again (the data path may have changed)."""
        self._applied = None

    def read(self, client: Any) -> tuple[int, list[Change]]:
        """Every lease record at one revision (etcd errors propagate)."""
        revision, [records] = snapshot(client, [self._keyspace.subnets])
        return revision, records

    def resync(
        self,
        datapath: DataPath,
        vx: int,
        config: NetworkConfig,
        records: tuple[int, list[Change]],
    ) -> Plan:
        """Make the kernel hold exactly what `records` (from `read`) call for."""
        revision, changes = records
        self._applied = None  # the kernel is read back below: what it holds is unknown
        self._leases.clear()
        self._fold(changes)
        self._revision = revision
        desired = self._desired(config)
        actions = plan(desired, datapath.read_state(vx))
        self._apply(datapath, vx, actions, desired)
        self.resyncs += 1
        return actions

    def follow(
        self, datapath: DataPath, vx: int, config: NetworkConfig, changes: Iterable[Change]
    ) -> Plan:
        """Apply a watch batch against the last applied state; OutOfStep when unknown."""
        if self._applied is None:
            raise OutOfStep("no full resync since the data path was last in doubt")
        applied = self._applied
        since = self._revision  # one transaction's changes share a revision: not `>=`
        self._fold([c for c in changes if c.revision > since])
        desired = self._desired(config)
        actions = plan(desired, applied)
        self._apply(datapath, vx, actions, desired)
        self.followed += 1
        return actions

    def _fold(self, changes: Iterable[Change]) -> None:
        for change in changes:
            self._revision = max(self._revision, change.revision)
            self._leases.pop(change.key, None)
            if change.value is not None:
                lease = read_record(self._keyspace, change.key, change.value, change.lease)
                if lease is not None:
                    self._leases[change.key] = lease

    def _desired(self, config: NetworkConfig) -> DataPathState:
        return desired_state(self._leases.values(), self._machine_id, config)

    def _apply(self, datapath: DataPath, vx: int, actions: Plan, desired: DataPathState) -> None:
        self._applied = None  # until the whole plan is in: a failure leaves it unknown
        if not actions.empty:
            log.info(
                "reconciling: +%d/-%d routes, +%d/-%d neighbours, +%d/-%d fdb",
                len(actions.add_routes),
                len(actions.remove_routes),
                len(actions.add_neighbours),
                len(actions.remove_neighbours),
                len(actions.add_fdb),
                len(actions.remove_fdb),
            )
            datapath.apply(vx, actions)
        self._applied = desired
