"""A cluster's bounded history: RRD-style rings of min/avg/max per time slot.

Each tier is a ring of ``rows`` slots of ``step`` seconds; a summary taken at ``at`` folds
into slot ``at // step % rows``, which first forgets whatever older period it held. So
a ring's size is fixed however many summaries arrive, and every summary costs the same
whatever the cluster's size: it updates one row per tier. Pure: no Datastore here.

A row is ``ROW_WIDTH`` doubles: the slot's start, how many summaries it folded, then
(min, sum, max) of each metric in `METRICS` (the average is sum / count).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from vulcano.heartbeat import ClusterSummary, MachineHealth

# What each row keeps, per summary: machines up, units running, and the mean load1 and
# CPU % of the machines that reported (up or late).
METRICS = ("machines_up", "units_running", "load", "cpu")
ROW_WIDTH = 2 + 3 * len(METRICS)
_REPORTING = (MachineHealth.UP, MachineHealth.LATE)


@dataclass(frozen=True)
class Tier:
    """One resolution: ``rows`` slots of ``step`` seconds (``name`` is the span shown)."""

    name: str
    step: int
    rows: int

    @property
    def span(self) -> int:
        return self.step * self.rows


# 1-minute slots for 6 hours, 15-minute slots for 3 days, hourly slots for 30 days.
TIERS = (Tier("6h", 60, 360), Tier("3d", 900, 288), Tier("30d", 3600, 720))


def metrics(summary: ClusterSummary) -> tuple[float, ...]:
    """The values one summary contributes, in `METRICS` order."""
    up = sum(1 for m in summary.machines if m.health is MachineHealth.UP)
    running = sum(1 for u in summary.units if u.active == "active")
    reporting = [m for m in summary.machines if m.health in _REPORTING]
    load = sum(m.load1 for m in reporting) / len(reporting) if reporting else 0.0
    cpu = sum(m.cpu_percent for m in reporting) / len(reporting) if reporting else 0.0
    return (float(up), float(running), load, cpu)


@dataclass(frozen=True)
class Row:
    """One slot as read back: its start, how many summaries, and min/avg/max per metric."""

    start: float
    count: int
    low: tuple[float, ...]
    mean: tuple[float, ...]
    high: tuple[float, ...]


class Ring:
    """One tier's slots, packed as doubles (what the Datastore entity stores as bytes)."""

    def __init__(self, tier: Tier, packed: bytes | None = None) -> None:
        self.tier = tier
        self.data = array("d")
        if packed and len(packed) == tier.rows * ROW_WIDTH * self.data.itemsize:
            self.data.frombytes(packed)
        else:  # none yet, or a ring of another shape: start empty
            self.data.extend([0.0] * (tier.rows * ROW_WIDTH))

    def packed(self) -> bytes:
        return self.data.tobytes()

    def fold(self, at: float, values: Sequence[float]) -> bool:
        """Fold one summary's ``values`` taken at ``at``; False when its slot moved on."""
        step = self.tier.step
        start = float(int(at // step) * step)
        base = int(at // step) % self.tier.rows * ROW_WIDTH
        held = self.data[base]
        if held > start:  # the slot already holds a later period: this one is gone
            return False
        if held < start or self.data[base + 1] == 0:
            self.data[base : base + ROW_WIDTH] = array("d", [start, 0.0] + [0.0] * (ROW_WIDTH - 2))
        first = self.data[base + 1] == 0
        self.data[base + 1] += 1
        for i, value in enumerate(values):
            cell = base + 2 + 3 * i
            low, total, high = self.data[cell : cell + 3]
            self.data[cell] = value if first else min(low, value)
            self.data[cell + 1] = total + value
            self.data[cell + 2] = value if first else max(high, value)
        return True

    def rows(self, now: float) -> list[Row]:
        """The slots that hold a period inside the ring's span before ``now``, oldest first."""
        oldest = now - self.tier.span
        out = []
        for base in range(0, len(self.data), ROW_WIDTH):
            start, count = self.data[base], int(self.data[base + 1])
            if count == 0 or start <= oldest or start > now:
                continue
            cells = self.data[base + 2 : base + ROW_WIDTH]
            out.append(
                Row(
                    start=start,
                    count=count,
                    low=tuple(cells[0::3]),
                    mean=tuple(total / count for total in cells[1::3]),
                    high=tuple(cells[2::3]),
                )
            )
        out.sort(key=lambda row: row.start)
        return out


def fold_all(rings: Sequence[Ring], summary: ClusterSummary) -> None:
    """Fold ``summary`` into every ring."""
    values = metrics(summary)
    for ring in rings:
        ring.fold(summary.at, values)
