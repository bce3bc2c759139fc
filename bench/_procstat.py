"""What the benches read of processes in /proc: CPU time, trees, memory; and tables."""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds the processes used so far (those still there)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICK


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError):
            continue
        found[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmdline)
    return found


def descendants(root: int, table: dict[int, tuple[int, str]]) -> list[int]:
    """`root` and every process under it, in `table` (from `processes()`)."""
    out, frontier = [root], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _) in table.items() if ppid == parent]
        out += children
        frontier += children
    return out


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, RssAnon) of a process, KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.split()[0] if value.split() else "0"
    return int(fields["VmRSS"]), int(fields["RssAnon"])


def print_table(table: list[list[str]]) -> None:
    """Rows of cells, the first one a header; the first column left-aligned."""
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for i, row in enumerate(table):
        pairs = enumerate(zip(row, widths, strict=True))
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in pairs))
        if i == 0:
            print("  ".join("-" * w for w in widths))
