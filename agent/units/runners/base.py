"""What every runner answers, so the machine's units do not care which one they have."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class RunContext:
    """Where a unit runs: what the specifiers and the sandbox need."""

    name: str
    hash: str
    hostname: str
    machine_id: str
    netns: str | None = None


@dataclass(frozen=True)
class RunStatus:
    load: str  # loaded | not-found
    active: str  # active | inactive | activating | deactivating | failed
    sub: str  # running | exited | dead | failed | start-pre | auto-restart | stop
    since: float = 0.0
    reason: str = ""
    hash: str = ""


class Runner(Protocol):
    def load(self, ctx: RunContext, text: str) -> None: ...
    def start(self, name: str) -> None: ...
    def stop(self, name: str) -> None: ...
    def unload(self, name: str) -> None: ...
    def loaded(self) -> list[str]: ...
    def status(self, name: str) -> RunStatus: ...
    def journal(self, name: str) -> tuple[int, list[str]]: ...
    def note(self, name: str, text: str) -> None:
        """Add a line of the agent's own to the unit's journal (what it did to the unit)."""

    def fence(self, deadline: float) -> None:
        """Units stop by themselves once the monotonic ``deadline`` passes (0: now)."""

    def reap(self, timeout: float = 0.0) -> None:
        """Collect helper processes that have finished (waiting up to ``timeout``)."""


@runtime_checkable
class Generational(Protocol):
    """A runner that knows when its units' statuses changed: ``generation()`` moves then.

    MachineUnits skips its periodic look at such a runner while the generation stands
    still (and nothing changed in etcd); other runners are looked at every poll.
    """

    def generation(self) -> int: ...


def systemd_is_pid1() -> bool:
    return os.path.isdir("/run/systemd/system")
