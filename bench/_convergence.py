"""The overlay bench's convergence run: test hosts, sandboxes, probers, the etcd watch.

See bench/overlay.py (table 1) for what is measured and how.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench._procstat import memory_kib
from vulcano.keyspace import DEFAULT_PREFIX, Keyspace
from vulcano.lab import services
from vulcano.lab.forward import entered
from vulcano.lab.netns import NETNS_DIR, REPO, TestHost, Underlay
from vulcano.lab.netns import _env as lab_env
from vulcano.watch import PrefixWatch, Resync, current_revision

CONVERGENCE_TIMEOUT = 600.0
MESH_PORT = 7778
SANDBOX_TIMEOUT = 180.0
CREATE_ATTEMPTS = 3
# Sandboxes made at once: every one's etcd calls go through this process's one client and
# its loopback forward, which 49 at once overwhelm on a loaded machine.
_CREATING = threading.BoundedSemaphore(8)


_GC_THRESH = Path("/proc/sys/net/ipv4/neigh/default")
_TICK = os.sysconf("SC_CLK_TCK")
# How often the bench reads the probers' result files: their times are the probers' own
# clock readings, so this only sets how soon the bench notices (and what it costs the
# agents: 50 files parsed per look).
MESH_POLL = 0.2
# How often the bench looks for the joiner's subnet.env (the N-1 others: every 0.1 s).
JOINER_POLL = 0.01
# Before the N-th agent starts: seconds the N-1 agents' CPU use is read over, idle.
IDLE_WINDOW = 2.0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the processes and their reaped children (nft...)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / _TICK


def machine_busy() -> float:
    """CPU seconds every core of the machine spent not idle so far (/proc/stat): set
    beside the parties' own, it shows what else ran (other users, the kernel's work)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / _TICK  # without idle and iowait


def _own_cpu() -> float:
    """This process's CPU seconds, every thread (the sandbox creations, the forward)."""
    return time.process_time()


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


def _create_sandbox(host: TestHost, name: str, client: Any) -> str:
    """Make the host's sandbox with the agent's own code (NodeSandboxes.create, what
    `vulcano-agent sandbox create` runs) in this thread, entered into the host's
    namespace: the bench times the overlay, not 50 Python start-ups of the CLI at once
    (`cli_s` in the table is one CLI start, measured apart). etcd is reached through the
    bench's client (the loopback forward), as this process has no underlay address."""
    from agent.overlay.sandboxes import NodeSandboxes

    sandboxes = NodeSandboxes(host.state_dir, client=lambda: client)
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            with _CREATING, entered(NETNS_DIR / host.netns):
                address = sandboxes.create(host.sandbox_netns(name))
            break
        except Exception as exc:  # the bench's one client, through its forward, timed out
            print(f"  sandbox on {host.netns}, try {attempt}: {exc!r}", file=sys.stderr)
            if attempt == CREATE_ATTEMPTS:
                raise
    host.sandboxes[name] = address
    return address


def _cli_start(host: TestHost) -> float:
    """Seconds of one `vulcano-agent sandbox list` on the host (the CLI's start-up)."""
    started = time.monotonic()
    host.exec(
        [sys.executable, "-m", "agent", "sandbox", "list", "--state-dir", str(host.state_dir)],
        cwd=REPO,
        env=lab_env(),
        timeout=SANDBOX_TIMEOUT,
    )
    return time.monotonic() - started


def _start_prober(
    argv: list[str], lock: threading.Lock, probers: list[subprocess.Popen[bytes]]
) -> None:
    prober = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, cwd=REPO, env=lab_env(), start_new_session=True
    )
    with lock:
        probers.append(prober)  # stopped by the caller, even when another host fails


def _wait_overlay(host: TestHost, interval: float) -> None:
    """Wait until the host's running agent (re)wrote subnet.env, looking every `interval`."""
    assert host.agent is not None
    since = host.agent.started
    deadline = time.monotonic() + CONVERGENCE_TIMEOUT
    while True:
        with contextlib.suppress(FileNotFoundError):
            if host.subnet_env.stat().st_mtime >= since:
                return
        if not host.agent.running():
            raise RuntimeError(f"agent on {host.netns} exited:\n{host.agent.log()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no overlay on {host.netns} in {CONVERGENCE_TIMEOUT} s")
        time.sleep(interval)


# A prober started before its sandbox exists: it waits for the sandbox's address (a file
# the bench writes once the sandbox is made) and namespace, enters it and probes.
_WAITING_PROBER = """
import sys, time
from pathlib import Path
from vulcano.lab.forward import entered
from vulcano.lab.meshprobe import run
port, netns, ip_file, targets, result = sys.argv[1:]
while not Path(ip_file).exists():
    time.sleep(0.005)
with entered(Path(netns)):
    run(int(port), Path(ip_file).read_text(), Path(targets), Path(result))
"""


def _time_sandbox(
    host: TestHost,
    targets: Path,
    lock: threading.Lock,
    probers: list[subprocess.Popen[bytes]],
    client: Any,
    poll: float = 0.1,
    prestart: bool = False,
) -> dict[str, Any]:
    """Wait for the host's overlay (looking every `poll` s), make its sandbox, start its
    prober (with `prestart`, started before and waiting: no Python start-up once the
    sandbox is made); the times."""
    result = targets.parent / f"mesh-{host.index}.json"
    ip_file = targets.parent / f"ip-{host.index}"
    if prestart:
        netns = str(NETNS_DIR / host.sandbox_netns("a"))
        argv = [sys.executable, "-c", _WAITING_PROBER, str(MESH_PORT), netns, str(ip_file)]
        _start_prober([*argv, str(targets), str(result)], lock, probers)
    _wait_overlay(host, poll)
    overlay_up = time.monotonic()
    ip = _create_sandbox(host, "a", client)
    made = time.monotonic()
    if prestart:
        ip_file.with_suffix(".tmp").write_text(ip)
        os.replace(ip_file.with_suffix(".tmp"), ip_file)
    else:
        netns_exec = ["ip", "netns", "exec", host.sandbox_netns("a"), sys.executable]
        argv = [*netns_exec, "-m", "vulcano.lab.meshprobe", str(MESH_PORT), ip]
        _start_prober([*argv, str(targets), str(result)], lock, probers)
    with lock:
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
        time.sleep(MESH_POLL)


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
                made = list(
                    pool.map(lambda h: _time_sandbox(h, targets, lock, probers, client), first)
                )
            heard = _wait_mesh(made, {m["ip"] for m in made})
            first_mesh = max(t for answers in heard.values() for t in answers.values())
            machines_before = set(puts.seen)
            load_mid = os.getloadavg()[0]
            others = [h.agent.pid for h in first if h.agent is not None]
            prober_pids = [p.pid for p in probers]
            idle_from = cpu_seconds(others)
            time.sleep(IDLE_WINDOW)  # what the N-1 agents use with nothing happening
            idle_rate = (cpu_seconds(others) - idle_from) / IDLE_WINDOW
            assert net.etcd is not None and net.etcd.proc is not None
            etcd = [net.etcd.proc.pid]
            cpu_before = (
                cpu_seconds(others),
                _own_cpu(),
                cpu_seconds(prober_pids),
                cpu_seconds(etcd),
                machine_busy(),
            )
            joined = time.monotonic()
            late.start_agent(ttl=10, subnet_ttl=120)
            # the joiner alone is watched closely: its subnet.env starts its sandbox
            joiner = _time_sandbox(
                late, targets, lock, probers, client, poll=JOINER_POLL, prestart=True
            )
            everyone = [*made, joiner]
            heard = _wait_mesh(everyone, {m["ip"] for m in everyone})
            assert late.agent is not None
            cpu_after = (
                cpu_seconds(others),
                _own_cpu(),
                cpu_seconds(prober_pids),
                cpu_seconds(etcd),
                machine_busy(),
            )
            joiner_cpu = cpu_seconds([late.agent.pid])
            join_wall = time.monotonic() - joined
            load_after = os.getloadavg()[0]
            cli_s = _cli_start(late)
            rss = [memory_kib(h.agent.pid) for h in hosts if h.agent is not None]
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
            "cli_s": cli_s,
            "join_wall_s": join_wall,
            "cpu_others_s": cpu_after[0] - cpu_before[0],
            "cpu_others_idle": idle_rate,
            "cpu_joiner_s": joiner_cpu,
            "cpu_bench_s": cpu_after[1] - cpu_before[1],
            "cpu_probers_s": cpu_after[2] - cpu_before[2],
            "cpu_etcd_s": cpu_after[3] - cpu_before[3],
            "cpu_machine_s": cpu_after[4] - cpu_before[4],
            "load": (load_before, load_mid, load_after),
            "rss_median_mib": statistics.median(r[0] for r in rss) / 1024,
            "rss_max_mib": max(r[0] for r in rss) / 1024,
            "anon_median_mib": statistics.median(r[1] for r in rss) / 1024,
        }
