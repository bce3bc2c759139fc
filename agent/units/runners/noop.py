"""A runner that pretends: for the scheduling benchmark."""

from __future__ import annotations

import time

from agent.units.runners.base import RunContext, RunStatus


class NoopRunner:
    """Pretends: start is instantly running, stop instantly dead. For benchmarks."""

    def __init__(self) -> None:
        self._units: dict[str, tuple[RunContext, bool, float]] = {}
        self._generation = 0

    def generation(self) -> int:
        """Changes whenever a unit's status may have (nothing else changes them here)."""
        return self._generation

    def load(self, ctx: RunContext, text: str) -> None:
        old = self._units.get(ctx.name)
        self._units[ctx.name] = (ctx, old[1] if old else False, old[2] if old else time.time())
        self._generation += 1

    def start(self, name: str) -> None:
        ctx, running, _ = self._units[name]
        if not running:
            self._units[name] = (ctx, True, time.time())
            self._generation += 1

    def stop(self, name: str) -> None:
        ctx, running, _ = self._units[name]
        if running:
            self._units[name] = (ctx, False, time.time())
            self._generation += 1

    def unload(self, name: str) -> None:
        self._units.pop(name, None)
        self._generation += 1

    def loaded(self) -> list[str]:
        return list(self._units)

    def status(self, name: str) -> RunStatus:
        if name not in self._units:
            return RunStatus("not-found", "inactive", "dead")
        ctx, running, since = self._units[name]
        if running:
            return RunStatus("loaded", "active", "running", since, hash=ctx.hash)
        return RunStatus("loaded", "inactive", "dead", since, hash=ctx.hash)

    def journal(self, name: str) -> tuple[int, list[str]]:
        return 0, []

    def note(self, name: str, text: str) -> None:
        return None

    def fence(self, deadline: float) -> None:
        return None

    def reap(self, timeout: float = 0.0) -> None:
        return None
