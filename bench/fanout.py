"""`vulcano exec`'s fan-out: one command on 50 sshd hosts at once vs one after another.

    python -m bench.fanout [--hosts 50] [--repeats 1]

Starts N real OpenSSH sshds on loopback ports (each with its own host keys, pinned as
the cluster's machine records pin them), then runs each command on every host twice in
one run: one host after another, and all at once through `container.ssh.fanout` (at most
`policy.EXEC_CONCURRENCY` at a time). Each run makes a fresh connection per host
(handshake, key check, login, command), as `vulcano exec` does. Prints both times, the
ratio (goal: at least 10x), this process's CPU per host (the rest of a host's time is
its sshd's, on the same cores here) and its RSS before and at its peak during the
concurrent runs. Commands: `true` (nothing but SSH's own cost) and `sleep 1` (a command
that takes a second on the host, as a package install or a service restart does).

The hosts share this machine's cores with the client, so their own per-session work
counts against the concurrent run as it would not on real machines. Each command is
run twice: with a clean login shell (the sessions' HOME an empty directory: "clean"),
and with root's own ~/.bashrc, which bash reads for every SSH command ("bashrc"; on a
developer's machine it may run pyenv or conda setup, a fifth of a second of CPU).
Needs root (sshd logs in as root with the container's key).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from container import policy
from container.ssh import fanout, keys
from container.ssh.destinations import Destination, Endpoint, resolve
from container.ssh.hostkeys import HostKey
from container.ssh.settings import SSHSettings
from vulcano.lab import sshd

COMMANDS = ("true", "sleep 1")


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@contextlib.contextmanager
def _peak_rss() -> Iterator[list[int]]:
    """Samples this process's RSS every 20 ms; the list's one item is the peak (KiB)."""
    peak = [_rss_kib()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], _rss_kib())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


def _login_home(servers: list[sshd.Sshd], home: Path | None) -> None:
    """Restart every sshd (same host keys) with its sessions' HOME at ``home`` (an empty
    directory: the login shell reads no rc file) or root's own (None)."""
    for server in servers:
        server.stop()
        server.extra = [f"SetEnv HOME={home}"] if home else []
        server.write_config(server.extra)
        server.start()


def _endpoints(servers: list[sshd.Sshd], settings: SSHSettings) -> list[Endpoint]:
    return [
        resolve(
            Destination(s.host, "root", s.port),
            settings.ssh_config,
            name=f"host{i}",
            pinned=[HostKey.from_line(line) for line in s.host_key_lines()],
        )
        for i, s in enumerate(servers)
    ]


def _check(outcomes: list[fanout.HostOutcome]) -> None:
    bad = [
        o.error or f"exit {o.result.exit_status if o.result else '?'}" for o in outcomes if not o.ok
    ]
    if bad:
        raise SystemExit(f"{len(bad)} hosts failed: {bad[:3]}")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(
    endpoints: list[Endpoint], command: str, settings: SSHSettings, concurrency: int
) -> dict[str, float]:
    started, cpu = time.monotonic(), _cpu()
    _check([fanout.run_on(e, command, settings) for e in endpoints])
    serial, serial_cpu = time.monotonic() - started, _cpu() - cpu
    before = _rss_kib()
    with _peak_rss() as peak:
        started = time.monotonic()
        _check(fanout.run_everywhere(endpoints, command, settings, concurrency))
        parallel = time.monotonic() - started
    return {
        "serial": serial,
        "parallel": parallel,
        "ratio": serial / parallel,
        "client_cpu_per_host_ms": 1000 * serial_cpu / len(endpoints),
        "rss_before_mib": before / 1024,
        "rss_peak_mib": peak[0] / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument(
        "--concurrency",
        default=str(policy.EXEC_CONCURRENCY),
        help="comma-separated limits to try (default: policy.EXEC_CONCURRENCY)",
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or not sshd.available():
        print("bench.fanout needs root and /usr/sbin/sshd", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="vulcano-fanout-") as tmp:
        base = Path(tmp)
        settings = SSHSettings(state_dir=base / "state")
        public = keys.public_key_line(settings.state_dir)
        print(f"# starting {args.hosts} sshds", file=sys.stderr, flush=True)
        with sshd.sshd_servers(base / "hosts", ["127.0.0.1"] * args.hosts, [public]) as servers:
            endpoints = _endpoints(servers, settings)
            fanout.run_on(endpoints[0], "true", settings)  # warm paramiko's imports
            results = {}
            limits = [int(n) for n in args.concurrency.split(",")]
            (base / "home").mkdir()
            for shell in ("clean", "bashrc"):
                _login_home(servers, base / "home" if shell == "clean" else None)
                for command in COMMANDS:
                    for limit in limits:
                        print(f"# {shell}: {command!r} x{limit}", file=sys.stderr, flush=True)
                        results[shell, command, limit] = measure(
                            endpoints, command, settings, limit
                        )
    print(
        f"\nexec fan-out: {args.hosts} sshd hosts on loopback (sharing this machine's "
        f"{os.cpu_count()} cores with the client), a new connection per host; "
        f"policy.EXEC_CONCURRENCY = {policy.EXEC_CONCURRENCY}"
    )
    print(
        f"{'shell':<7} {'command':<9} {'at once':>7} {'one by one (s)':>15} {'at once (s)':>12} "
        f"{'ratio':>7} {'client CPU/host (ms)':>21} {'RSS before (MiB)':>17} "
        f"{'RSS peak (MiB)':>15}"
    )
    for (shell, command, limit), r in results.items():
        print(
            f"{shell:<7} {command:<9} {limit:>7} {r['serial']:>15.2f} {r['parallel']:>12.2f} "
            f"{r['ratio']:>6.1f}x {r['client_cpu_per_host_ms']:>21.0f} "
            f"{r['rss_before_mib']:>17.1f} {r['rss_peak_mib']:>15.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
