"""What a machine sample is made of: /proc and the state dir's filesystem, read and parsed.

The parsers and `build_sample` are pure (table-tested without I/O); `read` is the one
place that opens files. CPU busy share is a difference of two /proc/stat readings, so
the sampler keeps the previous one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vulcano.heartbeat import HeartbeatError, MachineSample

log = logging.getLogger(__name__)

PROC = Path("/proc")
# A unit's "active/sub" as the schema takes it (vulcano.heartbeat: at most 65 characters).
_MAX_STATE = 65


@dataclass(frozen=True)
class CpuTimes:
    """The all-CPU line of /proc/stat, in clock ticks: busy and total since boot."""

    busy: int
    total: int


@dataclass(frozen=True)
class Readings:
    """One look at the machine: load averages, CPU ticks, memory and disk, in bytes."""

    load: tuple[float, float, float]
    cpu: CpuTimes
    mem_total: int
    mem_available: int
    disk_total: int
    disk_free: int  # what an unprivileged writer may still use (statvfs f_bavail): the
    # root-reserved blocks count as used, so a disk near full reads full before root's is


def parse_loadavg(text: str) -> tuple[float, float, float]:
    """/proc/loadavg's first three fields; ValueError when the text is not that file's."""
    parts = text.split()
    if len(parts) < 3:
        raise ValueError(f"/proc/loadavg: expected three load averages, got {text[:40]!r}")
    one, five, fifteen = (float(p) for p in parts[:3])
    return one, five, fifteen


def parse_cpu(text: str) -> CpuTimes:
    """The ``cpu`` line of /proc/stat: idle and iowait are idle, the rest busy.

    guest and guest_nice are already counted in user and nice, so they are left out.
    """
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            ticks = [int(f) for f in fields[1:9]]
            if len(ticks) < 4:
                break
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
            total = sum(ticks)
            return CpuTimes(busy=total - idle, total=total)
    raise ValueError("/proc/stat: no 'cpu' line with at least four counters")


def parse_meminfo(text: str) -> tuple[int, int]:
    """(MemTotal, MemAvailable) in bytes; kernels before 3.14 lack MemAvailable:
    free + buffers + cached stands in for it then."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            scale = 1024 if len(parts) > 1 and parts[1] == "kB" else 1
            values[name.strip()] = int(parts[0]) * scale
    if "MemTotal" not in values:
        raise ValueError("/proc/meminfo: no MemTotal")
    total = values["MemTotal"]
    available = values.get("MemAvailable")
    if available is None:
        available = sum(values.get(k, 0) for k in ("MemFree", "Buffers", "Cached"))
    return total, min(available, total)


def cpu_percent(previous: CpuTimes | None, current: CpuTimes) -> float:
    """Busy share of all CPUs between two readings, 0-100 (0 with no earlier reading)."""
    if previous is None:
        return 0.0
    total = current.total - previous.total
    busy = current.busy - previous.busy
    if total <= 0 or busy < 0:
        return 0.0  # no tick passed, or the counters went back (a reboot)
    return round(min(100.0, 100.0 * busy / total), 1)


def unit_states(states: Mapping[str, tuple[str, str]]) -> dict[str, str]:
    """The units as the schema takes them: ``name -> "active/sub"``.

    A unit whose name the schema cannot carry (longer than 128 characters, or with a
    systemd escape) is left out of the sample, and said so in the log; it still shows
    in ``unit-states/``.
    """
    out: dict[str, str] = {}
    for name, (active, sub) in sorted(states.items()):
        state = f"{active}/{sub}"[:_MAX_STATE]
        try:
            MachineSample.from_dict({"machine_id": "x", "at": 1e9, "units": {name: state}})
        except HeartbeatError as exc:
            log.debug("sample leaves out unit %r: %s", name, exc)
            continue
        out[name] = state
    return out


def build_sample(
    *,
    machine_id: str,
    hostname: str,
    public_ip: str,
    at: float,
    readings: Readings,
    previous_cpu: CpuTimes | None,
    units: Mapping[str, tuple[str, str]],
) -> MachineSample:
    """The sample of one machine at ``at`` from its readings (pure)."""
    mem_total = max(0, readings.mem_total)
    disk_total = max(0, readings.disk_total)
    return MachineSample(
        machine_id=machine_id,
        at=at,
        hostname=hostname[:253],
        public_ip=public_ip,
        load1=max(0.0, readings.load[0]),
        load5=max(0.0, readings.load[1]),
        load15=max(0.0, readings.load[2]),
        cpu_percent=cpu_percent(previous_cpu, readings.cpu),
        mem_total=mem_total,
        mem_used=min(mem_total, max(0, mem_total - readings.mem_available)),
        disk_total=disk_total,
        disk_used=min(disk_total, max(0, disk_total - readings.disk_free)),
        units=unit_states(units),
    )


def read(disk_path: Path, proc: Path = PROC) -> Readings:
    """Read /proc and statvfs ``disk_path`` now; OSError or ValueError when one fails."""
    load = parse_loadavg((proc / "loadavg").read_text())
    cpu = parse_cpu((proc / "stat").read_text())
    mem_total, mem_available = parse_meminfo((proc / "meminfo").read_text())
    fs = os.statvfs(disk_path)
    return Readings(
        load=load,
        cpu=cpu,
        mem_total=mem_total,
        mem_available=mem_available,
        disk_total=fs.f_blocks * fs.f_frsize,
        disk_free=fs.f_bavail * fs.f_frsize,
    )
