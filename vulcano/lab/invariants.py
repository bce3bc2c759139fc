"""Invariant samplers: watch a property all through a fault, not once after it.

    markers = {"mv.service": f"{marker}-mv.service"}
    with CopySampler(process_copies(markers)) as sampler:
        sampler.mark_fault()                        # the window opens
        victim.kill_agent()                         # the fault
        ...                                         # until the old copy is provably gone
        sampler.mark_gone()                         # the window closes here
    sampler.report.check(min_samples=100)           # at most one copy, and really sampled

A ``CopySampler`` thread calls ``copies()`` every few milliseconds; each call says, for
every unit, which copies of it exist right then (pids, machine names, anything the test
can observe). A sample where some unit has more than one copy is an ``Overlap``.
``check`` fails on any overlap, on a sampler that sampled too little, and on a window
the samples do not cover (the first sample must come before the fault, the last after
the old copy was gone). How often it sampled is printed, never asserted as a time.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vulcano.lab import policy
from vulcano.lab.cluster import parent_pid

Copies = Callable[[], Mapping[str, frozenset[str]]]


@dataclass(frozen=True)
class Overlap:
    """One sample in which ``unit`` had more than one copy."""

    unit: str
    copies: frozenset[str]
    at: float  # time.monotonic()


@dataclass
class SamplerReport:
    """What a sampler saw between its start and its stop."""

    samples: int = 0
    first: float = 0.0  # monotonic time of the first and last completed sample
    last: float = 0.0
    max_gap: float = 0.0  # the longest time between two samples (printed, not asserted)
    errors: list[str] = field(default_factory=list)
    overlaps: list[Overlap] = field(default_factory=list)
    seen: dict[str, set[str]] = field(default_factory=dict)  # every copy ever seen, per unit
    fault: float | None = None  # when the window opened and closed (see CopySampler)
    gone: float | None = None
    in_window: int = 0  # samples begun from the fault to the old copy's end

    def summary(self) -> str:
        return (
            f"{self.samples} samples ({self.in_window} in the window), longest gap "
            f"{self.max_gap * 1000:.0f} ms, {len(self.overlaps)} overlaps, "
            f"{len(self.errors)} errors"
        )

    def check(self, min_samples: int, units: list[str] | None = None) -> None:
        """Fail unless at most one copy of each unit ever ran at once, over enough samples
        that cover the whole window; ``units`` must each have been seen at least once."""
        print(f"invariant sampler: {self.summary()}")
        assert not self.errors, f"the sampler could not sample: {self.errors[:3]}"
        assert not self.overlaps, "more than one copy at once: " + "; ".join(
            f"{o.unit}: {sorted(o.copies)}" for o in self.overlaps[:5]
        )
        assert self.in_window >= min_samples, (
            f"only {self.in_window} samples in the window, wanted {min_samples}: {self.summary()}"
        )
        if self.fault is not None:
            assert self.first <= self.fault, "the sampler started after the fault"
        if self.gone is not None:
            assert self.last >= self.gone, "the sampler stopped before the old copy was gone"
        for unit in units or []:
            assert self.seen.get(unit), f"the sampler never saw a copy of {unit}"


class CopySampler:
    """A thread sampling ``copies()`` from ``start`` to ``stop``; see the module's doc."""

    def __init__(self, copies: Copies, interval: float = policy.SAMPLER_INTERVAL) -> None:
        self._copies = copies
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="copy-sampler", daemon=True)
        self._lock = threading.Lock()
        self.report = SamplerReport()

    def __enter__(self) -> CopySampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> CopySampler:
        """Start sampling; returns once the first sample is in (the window may open)."""
        self._thread.start()
        while not self._stop.is_set() and self.report.samples == 0 and not self.report.errors:
            time.sleep(self._interval)
        return self

    def mark_fault(self) -> None:
        """The fault happens now: a window opens (call it just before the fault).

        A sampler may watch several faults in turn: each call opens a new window (its
        samples counted afresh); overlaps are kept from every window and outside them.
        """
        with self._lock:
            self.report.fault = time.monotonic()
            self.report.gone = None
            self.report.in_window = 0

    def mark_gone(self) -> None:
        """The old copy is provably gone now; the window closes at the next sample."""
        with self._lock:
            self.report.gone = time.monotonic()
        target = self.report.samples + 2  # one that began after this call, completed
        while self._thread.is_alive() and self.report.samples < target:
            time.sleep(self._interval)

    def stop(self) -> SamplerReport:
        self._stop.set()
        self._thread.join(policy.SAMPLER_STOP_TIMEOUT)
        assert not self._thread.is_alive(), "the invariant sampler did not stop"
        return self.report

    def _run(self) -> None:
        report = self.report
        previous = 0.0
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                now = self._copies()
            except Exception as exc:  # kept, and failed on by check()
                report.errors.append(repr(exc))
                if len(report.errors) > 100:
                    return
                self._stop.wait(self._interval)
                continue
            with self._lock:
                if report.samples == 0:
                    report.first = began
                elif began - previous > report.max_gap:
                    report.max_gap = began - previous
                previous = began
                report.samples += 1
                report.last = began
                after_fault = report.fault is None or began >= report.fault
                before_gone = report.gone is None or began <= report.gone
                if after_fault and before_gone:
                    report.in_window += 1
                for unit, copies in now.items():
                    if copies:
                        report.seen.setdefault(unit, set()).update(copies)
                    if len(copies) > 1:
                        report.overlaps.append(Overlap(unit, frozenset(copies), began))
            self._stop.wait(self._interval)


def _cmdlines() -> dict[int, bytes]:
    """Every live (not zombie) process's command line, by pid, in one pass over /proc."""
    out: dict[int, bytes] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            if not cmd:
                continue  # kernel threads, and processes on their way out
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}:
            out[int(entry)] = cmd
    return out


def _namespace(pid: int, kind: str) -> int:
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return 0


def namespace_inode(path: str | Path) -> int:
    """The inode that names a namespace (a /run/netns file, a /proc/<pid>/ns/... link)."""
    return os.stat(path).st_ino


def process_copies(
    markers: Mapping[str, str],
    places: Mapping[int, str] | None = None,
    kind: str = "net",
) -> Copies:
    """``copies()`` from processes: unit → its processes whose command line holds the
    unit's marker, each named ``pid@place``.

    Every host's processes are in this machine's /proc (network-namespace hosts share its
    pid namespace; podman machines' pid namespaces are nested in it), so one pass sees
    every copy everywhere. ``places`` names the namespace of kind ``kind`` (``net`` or
    ``pid``) by inode, so an overlap says where each copy ran.

    A matching process whose parent matches too is part of its parent's copy, not another
    one: between fork and exec a shell's child carries the shell's command line.
    """
    wanted = {unit: marker.encode() for unit, marker in markers.items()}
    names = dict(places or {})

    def copies() -> dict[str, frozenset[str]]:
        found: dict[str, dict[int, str]] = {unit: {} for unit in wanted}
        for pid, cmd in _cmdlines().items():
            for unit, marker in wanted.items():
                if marker in cmd:
                    inode = _namespace(pid, kind)
                    found[unit][pid] = f"{pid}@{names.get(inode, inode)}"
        return {
            unit: frozenset(name for pid, name in pids.items() if parent_pid(pid) not in pids)
            for unit, pids in found.items()
        }

    return copies
