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
2. throughput — iperf3 between two hosts: sandbox→sandbox over the overlay, host→host
   over the underlay, and host→host over a VXLAN pair built by hand with `ip` on the same
   hosts (the kernel's own limit); medians of alternating runs, and the ratios.
3. RSS of the agents in the largest mesh (each has N-1 peers).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from vulcano.keyspace import DEFAULT_PREFIX, Keyspace
from vulcano.lab import services
from vulcano.lab.netns import REPO, TestHost, Underlay
from vulcano.lab.netns import _env as lab_env
from vulcano.lab.poll import wait_for
from vulcano.watch import PrefixWatch, Resync, current_revision

CONVERGENCE_TIMEOUT = 600.0
IPERF_PORT = 5201
MESH_PORT = 7778
SANDBOX_TIMEOUT = 180.0


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


class _FirstPuts:
    """The monotonic time each key under the prefixes was first put, from an etcd watch."""

    def __init__(self, client: Any, prefixes: list[str]) -> None:
        self.seen: dict[str, float] = {}
        self._watch = PrefixWatch(client, prefixes, current_revision(client) + 1)
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        while True:
            item = self._watch.events.get()
            if isinstance(item, Resync):
                return
            now = time.monotonic()
            for change in item:
                if change.value is not None:
                    self.seen.setdefault(change.key, now)

    def under(self, prefix: str) -> list[float]:
        return [t for key, t in self.seen.items() if key.startswith(prefix)]

    def close(self) -> None:
        self._watch.cancel()
        self._thread.join(10)


def _create_sandbox(host: TestHost, name: str) -> str:
    """`vulcano-agent sandbox create` on the host, as TestHost.create_sandbox, with a longer
    timeout: 50 of them start at once on a loaded machine."""
    ns = host.sandbox_netns(name)
    argv = [sys.executable, "-m", "agent", "sandbox", "create", ns]
    result = host.exec(
        [*argv, "--state-dir", str(host.state_dir)],
        check=False,
        cwd=REPO,
        env=lab_env(),
        timeout=SANDBOX_TIMEOUT,
    )
    if result.returncode != 0:
        raise RuntimeError(f"sandbox create {ns} failed: {result.stderr}")
    host.sandboxes[name] = result.stdout.strip()
    return host.sandboxes[name]


def _time_sandbox(
    host: TestHost, targets: Path, lock: threading.Lock, probers: list[subprocess.Popen[bytes]]
) -> dict[str, Any]:
    """Wait for the host's overlay, make its sandbox, start its prober; the times."""
    host.wait_overlay(timeout=CONVERGENCE_TIMEOUT)
    overlay_up = time.monotonic()
    ip = _create_sandbox(host, "a")
    made = time.monotonic()
    result = targets.parent / f"mesh-{host.index}.json"
    prober = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            host.sandbox_netns("a"),
            sys.executable,
            "-m",
            "vulcano.lab.meshprobe",
            str(MESH_PORT),
            ip,
            str(targets),
            str(result),
        ],
        stdout=subprocess.DEVNULL,
        cwd=REPO,
        env=lab_env(),
        start_new_session=True,
    )
    with lock:
        probers.append(prober)  # stopped by the caller, even when another host fails
        listed = targets.read_text() if targets.exists() else ""
        tmp = targets.with_suffix(".tmp")
        tmp.write_text(listed + ip + "\n")
        os.replace(tmp, targets)
    return {
        "overlay_up": overlay_up,
        "create_s": made - overlay_up,
        "sandbox": made,
        "ip": ip,
        "result": result,
    }


def _wait_mesh(made: list[dict[str, Any]], ips: set[str]) -> dict[str, dict[str, float]]:
    """Wait until each of `made` has heard every other address of `ips`; the first answers."""
    deadline = time.monotonic() + CONVERGENCE_TIMEOUT
    while True:
        heard = {}
        for m in made:
            path = m["result"]
            heard[m["ip"]] = json.loads(path.read_text()) if path.exists() else {}
        if all(ips - {ip} <= set(answers) for ip, answers in heard.items()):
            return heard
        if time.monotonic() > deadline:
            missing = {ip: sorted(ips - {ip} - set(a)) for ip, a in heard.items()}
            raise RuntimeError(f"the mesh did not converge: {missing}")
        time.sleep(0.05)


def convergence(base: Path, n: int) -> dict[str, Any]:
    """N-1 agents started at once (times from process start to their full mesh), then a
    late joiner: from its machine lease to every pair of all N reachable; RSS."""
    with neighbour_room(n), Underlay(base / f"conv{n}") as net:
        hosts = net.add_hosts(n)
        first, late = hosts[:-1], hosts[-1]
        net.init_network("10.244.0.0/16", 24)
        keyspace = Keyspace(DEFAULT_PREFIX)
        client = net.etcd_client()
        puts = _FirstPuts(client, [keyspace.machines, keyspace.subnets])
        targets = base / f"conv{n}" / "targets"
        lock = threading.Lock()
        load_before = os.getloadavg()[0]
        probers: list[subprocess.Popen[bytes]] = []
        try:
            started = time.monotonic()
            for host in first:
                host.start_agent(ttl=10, subnet_ttl=120)
            with ThreadPoolExecutor(len(first)) as pool:
                made = list(pool.map(lambda h: _time_sandbox(h, targets, lock, probers), first))
            heard = _wait_mesh(made, {m["ip"] for m in made})
            first_mesh = max(t for answers in heard.values() for t in answers.values())
            machines_before = set(puts.seen)
            load_mid = os.getloadavg()[0]
            joined = time.monotonic()
            late.start_agent(ttl=10, subnet_ttl=120)
            joiner = _time_sandbox(late, targets, lock, probers)
            everyone = [*made, joiner]
            heard = _wait_mesh(everyone, {m["ip"] for m in everyone})
            load_after = os.getloadavg()[0]
            rss = [_memory_kib(h.agent.pid) for h in hosts if h.agent is not None]
        finally:
            for proc in probers:
                services.stop_process(proc)
            puts.close()
            client.close()
        new = {k: t for k, t in puts.seen.items() if k not in machines_before}
        late_machine = [t for k, t in new.items() if k.startswith(keyspace.machines)]
        late_subnet = [t for k, t in new.items() if k.startswith(keyspace.subnets)]
        firsts_machine = [
            t
            for k, t in puts.seen.items()
            if k in machines_before and k.startswith(keyspace.machines)
        ]
        if len(late_machine) != 1 or len(late_subnet) != 1 or len(firsts_machine) != n - 1:
            raise RuntimeError(f"unexpected leases: {sorted(puts.seen)}")
        lease = late_machine[0]
        with_late = [
            t
            for ip, answers in heard.items()
            for peer, t in answers.items()
            if joiner["ip"] in (ip, peer)
        ]
        mesh = max(with_late)
        return {
            "n": n,
            "pairs": sum(len(a) for a in heard.values()),
            "first_machine_s": max(firsts_machine) - started,
            "first_sandbox_s": max(m["sandbox"] for m in made) - started,
            "first_mesh_s": first_mesh - started,
            "process_s": lease - joined,
            "subnet_s": late_subnet[0] - lease,
            "overlay_s": joiner["overlay_up"] - lease,
            "sandbox_s": joiner["sandbox"] - lease,
            "lease_to_mesh_s": mesh - lease,
            "sandbox_to_mesh_s": mesh - joiner["sandbox"],
            "create_median_s": statistics.median(m["create_s"] for m in made),
            "load": (load_before, load_mid, load_after),
            "rss_median_mib": statistics.median(r[0] for r in rss) / 1024,
            "rss_max_mib": max(r[0] for r in rss) / 1024,
            "anon_median_mib": statistics.median(r[1] for r in rss) / 1024,
        }


def _memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, RssAnon) of a process, KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.split()[0] if value.split() else "0"
    return int(fields["VmRSS"]), int(fields["RssAnon"])


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


def _print_table(table: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for i, row in enumerate(table):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


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
        print("\n(1a) N-1 agents started at once: seconds from process start")
        _print_table(
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
                    )
                ),
                "{:.0f}/{:.0f}/{:.0f}".format(*r["load"]),
            ]
            for r in rows
        ]
        _print_table(table)
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
