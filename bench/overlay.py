"""Overlay benchmark: convergence, throughput against the kernel's own VXLAN, agent RSS.

    python -m bench.overlay [--sizes 10,25,50] [--seconds 5] [--repeats 3]

Needs root (network namespaces). Prints three tables:

1. convergence — N test hosts. Each host's sandbox is made as soon as its overlay is up
   and runs a UDP prober (vulcano.lab.meshprobe) that echoes to every other sandbox; a
   pair's time is its first echo across the overlay. (1a) N-1 agents started at once:
   seconds from process start to their last machine lease, last sandbox and full mesh.
   (1b) then the last agent starts: seconds from its machine lease in etcd (seen by a
   watch) to its subnet lease, its subnet.env, its sandbox, and every ordered pair of
   the N sandboxes reachable. That is where the agent's own work starts: started with
   the others, the last lease is dominated by N Python start-ups sharing this machine.
   Sandboxes are made by the agent's own code (NodeSandboxes.create, what `vulcano-agent
   sandbox create` runs) in a bench thread inside the host's namespace, so one CLI
   start-up (timed apart, "one CLI start") is not counted in the mesh times. (1c) the
   CPU seconds each party used during the join, from /proc: where the 2 cores went.
2. throughput — iperf3 between two hosts: sandbox→sandbox over the overlay, host→host
   over the underlay, and host→host over a VXLAN pair built by hand with `ip` on the same
   hosts (the kernel's own limit); medians of alternating runs, and the ratios.
3. RSS of the agents in the largest mesh (each has N-1 peers).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench._convergence import convergence
from bench._procstat import print_table
from vulcano.lab import services
from vulcano.lab.netns import Underlay
from vulcano.lab.poll import wait_for

IPERF_PORT = 5201


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
        failed = []
        for n in sizes:
            try:
                rows.append(convergence(base, n))
            except Exception as exc:  # report it, and go on with the other sizes
                traceback.print_exc()
                print(f"  N={n} failed: {exc}", file=sys.stderr, flush=True)
                failed.append(n)
                continue
            print(f"  converged N={n}: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
        if failed:
            print(f"\nsizes that failed (see the log): {failed}")
        if not rows:
            return 1
        print("\n(1a) N-1 agents started at once: seconds from process start")
        print_table(
            [
                ["hosts", "last machine lease", "last sandbox", "full mesh", "create median"],
                *(
                    [
                        str(r["n"] - 1),
                        f"{r['first_machine_s']:.2f}",
                        f"{r['first_sandbox_s']:.2f}",
                        f"{r['first_mesh_s']:.2f}",
                        f"{r['create_median_s']:.2f}",
                    ]
                    for r in rows
                ),
            ]
        )
        print("\n(1b) then the N-th agent joins: seconds from its machine lease in etcd")
        print("     (lease→mesh: until every ordered pair of the N sandboxes with it answered)")
        header = [
            "hosts",
            "pairs",
            "start→lease",
            "subnet lease",
            "subnet.env",
            "sandbox made",
            "lease→mesh",
            "sandbox→mesh",
            "one CLI start",
            "load 1m start/join/end",
        ]
        table = [header] + [
            [
                str(r["n"]),
                str(r["pairs"]),
                *(
                    f"{r[k]:.2f}"
                    for k in (
                        "process_s",
                        "subnet_s",
                        "overlay_s",
                        "sandbox_s",
                        "lease_to_mesh_s",
                        "sandbox_to_mesh_s",
                        "cli_s",
                    )
                ),
                "{:.0f}/{:.0f}/{:.0f}".format(*r["load"]),
            ]
            for r in rows
        ]
        print_table(table)
        print("\n(1c) CPU seconds from the N-th agent's start to the full mesh (2 cores)")
        print("     (agents with their reaped children: nft, iptables; the joiner since start;")
        print("     idle: CPU s per s of the N-1 agents over 2 s before, nothing happening;")
        print("     machine: every core's busy time, /proc/stat: the rest is others or the kernel)")
        parties = ["N-1 agents", "(idle)", "joiner", "bench", "probers", "etcd", "machine"]
        print_table(
            [
                ["hosts", "wall", *parties],
                *(
                    [
                        str(r["n"]),
                        *(
                            f"{r[k]:.2f}"
                            for k in (
                                "join_wall_s",
                                "cpu_others_s",
                                "cpu_others_idle",
                                "cpu_joiner_s",
                                "cpu_bench_s",
                                "cpu_probers_s",
                                "cpu_etcd_s",
                                "cpu_machine_s",
                            )
                        ),
                    ]
                    for r in rows
                ),
            ]
        )
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
        print(
            f"VmRSS median {largest['rss_median_mib']:.1f} MiB, max {largest['rss_max_mib']:.1f}"
            f" MiB; RssAnon median {largest['anon_median_mib']:.1f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
