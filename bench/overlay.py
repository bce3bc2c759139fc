"""Overlay benchmark: convergence, throughput against the kernel's own VXLAN, agent RSS.

    python -m bench.overlay [--sizes 10,25,50] [--seconds 5] [--repeats 3]

Needs root (network namespaces). Prints three tables:

1. convergence — N test hosts, all agents started at once; seconds from the last agent's
   start until every host's sandbox reaches every other sandbox (ICMP and TCP echo).
2. throughput — iperf3 between two hosts: sandbox→sandbox over the overlay, host→host
   over the underlay, and host→host over a VXLAN pair built by hand with `ip` on the same
   hosts (the kernel's own limit); medians of alternating runs, and the ratios.
3. RSS of the agents in the largest mesh (each has N-1 peers).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vulcano.lab import services
from vulcano.lab.netns import TestHost, Underlay
from vulcano.lab.poll import wait_for

PROBE_WORKERS = 6
CONVERGENCE_TIMEOUT = 600.0
IPERF_PORT = 5201


def _pairs_ok(results: dict[str, dict[str, bool]]) -> set[str]:
    failed = {kind for r in results.values() for kind, ok in r.items() if not ok}
    if failed:
        print(f"  failed probes: {sorted(failed)}", file=sys.stderr)
    return {ip for ip, r in results.items() if all(r.values())}


_GC_THRESH = Path("/proc/sys/net/ipv4/neigh/default")


@contextlib.contextmanager
def neighbour_room(hosts: int) -> Iterator[None]:
    """Make room in the kernel's ARP table for `hosts` simulated hosts, then restore it.

    The table and its gc_thresh limits are global to the kernel, not per namespace: 50
    test hosts on one kernel need 50 x 49 underlay entries (plus sandbox ones), past the
    default gc_thresh3 of 1024, and the kernel then drops new entries ("neighbor table
    overflow"), which real hosts, each with its own table, never see.
    """
    need = 4 * hosts * hosts + 1024
    names = ["gc_thresh3", "gc_thresh2"]
    saved = {name: (_GC_THRESH / name).read_text().strip() for name in names}
    try:
        if int(saved["gc_thresh3"]) < need:
            (_GC_THRESH / "gc_thresh3").write_text(str(need))
            (_GC_THRESH / "gc_thresh2").write_text(str(need // 2))
        yield
    finally:
        for name, value in saved.items():
            (_GC_THRESH / name).write_text(value)


def convergence(base: Path, n: int) -> dict[str, float]:
    """Seconds from the last agent's start until the full mesh answers; plus RSS."""
    with neighbour_room(n), Underlay(base / f"conv{n}") as net:
        hosts = net.add_hosts(n)
        net.init_network("10.244.0.0/16", 24)
        for host in hosts:
            host.start_agent(ttl=10, subnet_ttl=120)
        started = time.monotonic()

        def ready(host: TestHost) -> None:
            host.wait_overlay(timeout=CONVERGENCE_TIMEOUT)
            host.create_sandbox("a")

        with ThreadPoolExecutor(PROBE_WORKERS) as pool:
            list(pool.map(ready, hosts))
        sandboxes_up = time.monotonic() - started
        addresses = {h.netns: h.sandbox_ip("a") for h in hosts}
        pending = {h.netns: {ip for ns, ip in addresses.items() if ns != h.netns} for h in hosts}
        by_ns = {h.netns: h for h in hosts}
        deadline = started + CONVERGENCE_TIMEOUT
        while any(pending.values()) and time.monotonic() < deadline:

            def probe(ns: str) -> tuple[str, set[str]]:
                return ns, _pairs_ok(by_ns[ns].probe("a", sorted(pending[ns])))

            with ThreadPoolExecutor(PROBE_WORKERS) as pool:
                for ns, ok in pool.map(probe, [ns for ns, left in pending.items() if left]):
                    pending[ns] -= ok
            left = sum(len(v) for v in pending.values())
            print(f"  N={n} t={time.monotonic() - started:.1f}s pairs left {left}", file=sys.stderr)
        converged = time.monotonic() - started
        if any(pending.values()):
            raise RuntimeError(f"mesh of {n} did not converge: {pending}")
        rss = [_rss_kib(h.agent.pid) for h in hosts if h.agent is not None]
        return {
            "n": n,
            "sandboxes_up_s": sandboxes_up,
            "converged_s": converged,
            "rss_median_mib": statistics.median(rss) / 1024,
            "rss_max_mib": max(rss) / 1024,
        }


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def _iperf(server: list[str], client: list[str], target: str, seconds: int) -> float:
    """Gbit/s received by an iperf3 server started with `server` prefix, from `client`."""
    srv = subprocess.Popen(
        [*server, "iperf3", "-s", "-1", "-p", str(IPERF_PORT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        time.sleep(0.3)
        out = subprocess.run(
            [*client, "iperf3", "-c", target, "-p", str(IPERF_PORT), "-t", str(seconds), "-J"],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=True,
        ).stdout
        return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9
    finally:
        services.stop_process(srv)


def throughput(base: Path, seconds: int, repeats: int) -> dict[str, float]:
    with Underlay(base / "tput") as net:
        a, b = net.add_hosts(2)
        net.init_network("10.244.0.0/16", 24)
        for host in (a, b):
            host.start_agent(ttl=10, subnet_ttl=120)
        for host in (a, b):
            host.wait_overlay()
        a.create_sandbox("s", echo=False)
        ip_b = b.create_sandbox("s", echo=False)
        mtu = int(a.wait_overlay()["FLANNEL_MTU"])
        # the kernel's own VXLAN, built by hand on the same hosts
        for host, mine, peer in ((a, "172.31.250.1", b.ip), (b, "172.31.250.2", a.ip)):
            host.exec(
                [
                    "ip",
                    "link",
                    "add",
                    "vxhand",
                    "type",
                    "vxlan",
                    "id",
                    "4242",
                    "dstport",
                    "4789",
                    "local",
                    host.ip,
                    "dev",
                    "eth0",
                    "nolearning",
                ]
            )
            host.exec(["ip", "link", "set", "vxhand", "mtu", str(mtu), "up"])
            host.exec(["ip", "addr", "add", f"{mine}/24", "dev", "vxhand"])
            host.exec(
                ["bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vxhand", "dst", peer]
            )
        wait_for(
            lambda: (
                a.exec(
                    [
                        "python3",
                        "-c",
                        "import socket;socket.create_connection(('172.31.250.2',9),1)",
                    ],
                    check=False,
                ).returncode
                in (0, 1)
            ),
            10,
            "hand vxlan",
        )
        samples: dict[str, list[float]] = {
            "underlay": [],
            "overlay": [],
            "overlay_host": [],
            "hand_vxlan": [],
        }
        vtep_b = b.overlay_state()["subnet"].split("/")[0]  # b's VXLAN device address
        netns_a = ["ip", "netns", "exec", a.sandbox_netns("s")]
        netns_b = ["ip", "netns", "exec", b.sandbox_netns("s")]
        for _ in range(repeats):
            samples["underlay"].append(_iperf(b.nsenter([]), a.nsenter([]), b.ip, seconds))
            samples["overlay"].append(_iperf(netns_b, netns_a, ip_b, seconds))
            samples["hand_vxlan"].append(
                _iperf(b.nsenter([]), a.nsenter([]), "172.31.250.2", seconds)
            )
            samples["overlay_host"].append(_iperf(b.nsenter([]), a.nsenter([]), vtep_b, seconds))
        return {k: statistics.median(v) for k, v in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,25,50")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="vulcano-bench-") as tmp:
        base = Path(tmp)
        rows = []
        for n in sizes:
            rows.append(convergence(base, n))
            print(f"  converged N={n}", file=sys.stderr, flush=True)
        print("\n(1) convergence: all agents started at once")
        print(f"{'hosts':>6} {'sandboxes up (s)':>17} {'full mesh (s)':>14}")
        for r in rows:
            print(f"{r['n']:>6} {r['sandboxes_up_s']:>17.1f} {r['converged_s']:>14.1f}")
        if not args.skip_throughput:
            t = throughput(base, args.seconds, args.repeats)
            print(f"\n(2) throughput: iperf3, {args.seconds}s runs, median of {args.repeats}")
            print(f"{'path':<34} {'Gbit/s':>8}")
            print(f"{'underlay (host→host)':<34} {t['underlay']:>8.2f}")
            print(f"{'hand-built VXLAN (host→host)':<34} {t['hand_vxlan']:>8.2f}")
            print(f"{'overlay VXLAN (host→host)':<34} {t['overlay_host']:>8.2f}")
            print(f"{'overlay (sandbox→sandbox)':<34} {t['overlay']:>8.2f}")
            hand, under = t["hand_vxlan"], t["underlay"]
            print(f"sandbox→sandbox / hand-built VXLAN = {t['overlay'] / hand:.2f}")
            print(f"sandbox→sandbox / underlay         = {t['overlay'] / under:.2f}")
            print(f"overlay host→host / hand-built     = {t['overlay_host'] / hand:.2f}")
        largest = rows[-1]
        print(f"\n(3) agent RSS with {largest['n'] - 1} peers")
        print(f"median {largest['rss_median_mib']:.1f} MiB, max {largest['rss_max_mib']:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
