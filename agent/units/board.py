"""Units per machine while a placement is being built (agent/units/scheduler.py)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping

from vulcano.records import Machine


class Board:
    """Which units sit on which machine, and the least loaded machine at any moment.

    A heap of (load, machine id) answers "the least loaded machine" without sorting
    every machine for every unit: each change pushes the machine's new load, and stale
    entries (a load that is no longer the machine's) are dropped when they surface.
    """

    def __init__(self, machines: Iterable[Machine]) -> None:
        self.machines = {m.id: m for m in machines}
        self.by_id = sorted(self.machines.values(), key=lambda m: m.id)
        self.units: dict[str, set[str]] = {m: set() for m in self.machines}
        self.where: dict[str, str] = {}
        self._loads = [(0, m.id) for m in self.by_id]  # sorted, hence a heap already

    def put(self, unit: str, machine: str) -> None:
        self.units[machine].add(unit)
        self.where[unit] = machine
        heapq.heappush(self._loads, (len(self.units[machine]), machine))

    def put_all(self, placements: Mapping[str, str]) -> None:
        """Put every unit on its machine at once (an empty board: one heap build)."""
        for unit, machine in placements.items():
            self.units[machine].add(unit)
        self.where.update(placements)
        self._loads = [(len(self.units[m.id]), m.id) for m in self.by_id]
        heapq.heapify(self._loads)

    def remove(self, unit: str) -> str | None:
        machine = self.where.pop(unit, None)
        if machine is not None:
            self.units[machine].discard(unit)
            heapq.heappush(self._loads, (len(self.units[machine]), machine))
        return machine

    def least_loaded(self) -> str | None:
        """The machine with the fewest units, ties to the lowest id (None: no machines)."""
        loads = self._loads
        while loads and loads[0][0] != len(self.units[loads[0][1]]):
            heapq.heappop(loads)
        return loads[0][1] if loads else None
