"""The units component: this node's engine (which campaigns for leadership) and its
MachineUnits (which run what the engine assigned here), started once the node has joined.
"""

from __future__ import annotations

import logging
import time

from agent.units.engine import Engine
from agent.units.machine_units import MachineUnits

log = logging.getLogger(__name__)


class Units:
    """Starts and stops the engine (if any) and this machine's units."""

    def __init__(self, machine_units: MachineUnits, engine: Engine | None = None) -> None:
        self.machine_units = machine_units
        self.engine = engine

    def start(self) -> None:
        if self.engine is not None:
            self.engine.start()
        self.machine_units.start()

    def stop(self) -> None:
        started = time.monotonic()
        self.machine_units.stop()
        if self.engine is not None:
            self.engine.stop()
        log.info("units: engine and machine units stopped in %.1fs", time.monotonic() - started)
