"""Many machines for the unit-engine benchmarks: real agent code, in a few processes.

One real etcd 3.4 on loopback; the engine alone in a process of its own; the agents
spread over ``procs`` processes, each agent a ``Member`` (its machine record on its own
lease, kept alive by a thread) with real ``MachineUnits`` and a no-op runner that
notes every start. Every process reports its CPU seconds (rusage: user + system, all
its threads) and peak RSS when it is told to stop; agent processes also report each
unit's starts (wall-clock times), which is how the failover benchmark proves that no
unit ran twice.

``launched`` counts units that the agents reported active in etcd (a watch on
unit-states/, which etcd counts as one stream, not as requests). ``etcd_requests`` is
etcd's own count: every unary gRPC call plus every lease keep-alive message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from agent.units.runners.noop import NoopRunner
from vulcano import etcd as vulcano_etcd
from vulcano import watch_hub
from vulcano.etcdtls import TLSFiles
from vulcano.keyspace import Keyspace
from vulcano.lab.services import Etcd, stop_process
from vulcano.records import UnitState
from vulcano.watch import PrefixWatch, Resync, current_revision

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 300.0
# On a real cluster etcd has a machine of its own; here it shares 2 cores with 1,000
# agents (and whatever else runs), so it is given the CPU first.
ETCD_NICE = -10
REQUEST_TIMEOUT = 30.0  # a loaded 2-core machine: patience rather than errors


# With mutual TLS on, every process of the farm finds the client's files here (the
# agent's own variables, inherited from the benchmark that sets them).
TLS_VARS = ("VULCANO_CACERT", "VULCANO_CERT", "VULCANO_KEY")


def tls_from_environment() -> TLSFiles | None:
    cacert, cert, key = (os.environ.get(v, "") for v in TLS_VARS)
    return TLSFiles(Path(cacert), Path(cert), Path(key)) if cacert else None


def _metrics(endpoint: str) -> str:
    tls = tls_from_environment()
    if tls is None:
        return requests.get(f"{endpoint}/metrics", timeout=10).text
    cert = (str(tls.cert), str(tls.key))
    return requests.get(f"{endpoint}/metrics", timeout=10, verify=str(tls.cacert), cert=cert).text


def etcd_requests(endpoint: str) -> int:
    """Unary gRPC calls plus lease keep-alive messages etcd has received so far."""
    text = _metrics(endpoint)
    total = 0
    for line in text.splitlines():
        unary = line.startswith("grpc_server_started_total{") and 'grpc_type="unary"' in line
        keepalive = line.startswith("grpc_server_msg_received_total{") and "KeepAlive" in line
        if unary or keepalive:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def etcd_requests_by_method(endpoint: str) -> dict[str, int]:
    """The same count, per gRPC method (Txn, Range, Put, LeaseKeepAlive...)."""
    text = _metrics(endpoint)
    out: dict[str, int] = {}
    for line in text.splitlines():
        unary = line.startswith("grpc_server_started_total{") and 'grpc_type="unary"' in line
        keepalive = line.startswith("grpc_server_msg_received_total{") and "KeepAlive" in line
        if unary or keepalive:
            method = line.split('grpc_method="', 1)[1].split('"', 1)[0]
            out[method] = out.get(method, 0) + int(float(line.rsplit(" ", 1)[1]))
    return out


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (from /proc), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _usage() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu": usage.ru_utime + usage.ru_stime, "max_rss_mb": usage.ru_maxrss / 1024}


ENGINE_CLIENT_VAR = "BENCH_ENGINE_CLIENT"  # the engine's etcd client: http (default) or grpc


def _client(endpoint: str) -> Any:
    """The client the agent itself uses (a lone endpoint is never put aside after an error)."""
    return vulcano_etcd.connect(endpoint, timeout=REQUEST_TIMEOUT, tls=tls_from_environment())


class CountingRunner(NoopRunner):
    """The no-op runner, noting the wall-clock time of every start of every unit."""

    def __init__(self, starts: dict[str, list[float]]) -> None:
        super().__init__()
        self.starts = starts

    def start(self, name: str) -> None:
        if self.status(name).active != "active":
            self.starts.setdefault(name, []).append(time.time())
        super().start(name)


def engine_main(endpoint: str, out: str) -> None:
    """The engine alone in this process until SIGTERM; then its stats and usage to ``out``.

    On the client the engine has in a real agent: etcd's JSON gateway (`vulcano.etcdhttp`);
    with BENCH_ENGINE_CLIENT=grpc on python-etcd3's, as before the agent left gRPC (to
    compare the two side by side). The farm's agents share gRPC streams (one watch hub
    and one keep-alive stream a process), which only python-etcd3's client has."""
    from agent.units.engine import Engine
    from vulcano import etcdhttp

    if os.environ.get(ENGINE_CLIENT_VAR, "http") == "grpc":
        client = _client(endpoint)
    else:
        client = etcdhttp.connect(endpoint, timeout=REQUEST_TIMEOUT, tls=tls_from_environment())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    engine = Engine(client, Keyspace(), "bench-engine", stop=stop)
    log_file = os.environ.get("BENCH_ENGINE_LOG")  # a file: the engine's log, at debug
    if log_file:
        logging.basicConfig(
            filename=log_file, level=logging.DEBUG, format="%(asctime)s %(message)s"
        )
    profile = os.environ.get("BENCH_PROFILE")  # a file: the engine's cProfile stats
    if profile:
        import cProfile

        cProfile.runctx("engine.run()", globals(), {"engine": engine}, profile)
    else:
        engine.run()  # on this thread, until SIGTERM sets ``stop``
    stats = engine.stats
    record = {
        "plans": stats.plans,
        "replans": stats.replans,
        "plan_seconds": stats.plan_seconds,
        "txns": stats.txns,
    }
    Path(out).write_text(json.dumps({**record, **_usage()}))


def agents_main(endpoint: str, first: int, count: int, ttl: int, base: str, out: str) -> None:
    """Agents ``first``..``first+count-1`` in this process until SIGTERM, then report."""
    from agent.units.machine_units import MachineUnits
    from vulcano.lab.cluster import Member
    from vulcano.lab.leases import LeaseKeeper

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    client = _client(endpoint)
    keeper = LeaseKeeper(client, ttl / 3)  # as often as a Member refreshes by itself
    watch_hub.attach(client)  # every agent's watch on one stream: see vulcano/watch_hub.py
    starts: dict[str, list[float]] = {}
    members = []
    agents = []
    for i in range(first, first + count):
        m = Member(
            endpoint, machine_id(i), Path(base) / f"{i:05d}", ttl=ttl, client=client, keeper=keeper
        )
        for delay in (0.5, 1, 2, 4, 8, 0):
            try:
                members.append(m.start())
                break
            except Exception:
                if not delay:
                    raise
                time.sleep(delay)
        agents.append(MachineUnits(m, CountingRunner(starts)))
    for a in agents:
        a.start()
    Path(out + ".ready").write_text("ready")
    stop.wait()
    for a in agents:
        a.stop_event.set()
    keeper.close()  # no more keep-alives: the leases just expire
    Path(out).write_text(json.dumps({"starts": starts, **_usage()}))
    os._exit(0)  # the agents' threads need not be joined one by one


def machine_id(i: int) -> str:
    return f"bench{i:05d}"


@dataclass
class Farm:
    """The engine process and the agent processes, started and stopped by this object."""

    endpoint: str
    base: Path
    agents: int
    procs: int
    ttl: int
    engine: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    worker_ranges: list[tuple[int, int]] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "bench._farm", *args], start_new_session=True, cwd=str(ROOT)
        )

    def start(self, alone: int | None = None) -> Farm:
        """Start the engine and the agents; ``alone``: that agent in a process of its own."""
        self.base.mkdir(parents=True, exist_ok=True)
        self.engine = self._spawn("engine", self.endpoint, str(self.base / "engine.json"))
        ranges: list[tuple[int, int]] = []
        others = [i for i in range(self.agents) if i != alone]
        per = -(-len(others) // self.procs)
        for p in range(self.procs):
            chunk = others[p * per : (p + 1) * per]
            # the ids of one process are consecutive except around ``alone``
            runs: list[tuple[int, int]] = []
            for i in chunk:
                if runs and runs[-1][0] + runs[-1][1] == i:
                    runs[-1] = (runs[-1][0], runs[-1][1] + 1)
                else:
                    runs.append((i, 1))
            ranges.extend(runs)
        if alone is not None:
            ranges.append((alone, 1))
        self.worker_ranges = ranges
        for first, count in ranges:
            out = str(self.base / f"agents-{first:05d}.json")
            self.workers.append(
                self._spawn(
                    "agents",
                    self.endpoint,
                    str(first),
                    str(count),
                    str(self.ttl),
                    str(self.base / "state"),
                    out,
                )
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        client = _client(self.endpoint)
        ks = Keyspace()
        try:
            while True:
                ready = all(
                    Path(self.base / f"agents-{first:05d}.json.ready").exists()
                    for first, _ in self.worker_ranges
                )
                leader = client.get(ks.engine_leader)[0] is not None
                if ready and leader:
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError("agents or engine not ready in time")
                time.sleep(0.2)
        finally:
            client.close()

    def worker_of(self, agent: int) -> subprocess.Popen[bytes]:
        for proc, (first, count) in zip(self.workers, self.worker_ranges, strict=True):
            if first <= agent < first + count:
                return proc
        raise KeyError(agent)

    def stop(self) -> dict[str, Any]:
        """Stop every process; their reports: engine stats, agents' CPU, starts."""
        for proc in [*self.workers, *([self.engine] if self.engine else [])]:
            stop_process(proc)
        engine_file = self.base / "engine.json"
        engine = json.loads(engine_file.read_text()) if engine_file.exists() else {}
        cpu = 0.0
        starts: dict[str, list[float]] = {}
        reported = 0
        for first, _ in self.worker_ranges:
            f = self.base / f"agents-{first:05d}.json"
            if not f.exists():
                continue  # a process the benchmark killed
            data = json.loads(f.read_text())
            reported += 1
            cpu += data["cpu"]
            for name, times in data["starts"].items():
                starts.setdefault(name, []).extend(times)
        self.results = {"engine": engine, "agents_cpu": cpu, "starts": starts, "reported": reported}
        return self.results


class ActiveUnits:
    """Which machine reports each unit active, kept current by a watch on unit-states/."""

    def __init__(self, client: Any) -> None:
        self.ks = Keyspace()
        self.active: dict[str, set[str]] = {}
        self.twice: set[str] = set()  # units seen active on two machines at once
        self._lock = threading.Lock()
        self._watch = PrefixWatch(client, [self.ks.unit_states], current_revision(client) + 1)
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        while True:
            item = self._watch.events.get()
            if isinstance(item, Resync):
                return
            with self._lock:
                for ch in item:
                    name, _, machine = ch.key[len(self.ks.unit_states) :].partition("/")
                    on = self.active.setdefault(name, set())
                    if ch.value is not None and UnitState.from_json(ch.value).active == "active":
                        on.add(machine)
                        if len(on) > 1:
                            self.twice.add(name)
                    else:
                        on.discard(machine)

    def count(self) -> int:
        with self._lock:
            return sum(1 for on in self.active.values() if on)

    def where(self, name: str) -> set[str]:
        with self._lock:
            return set(self.active.get(name, ()))

    def close(self) -> None:
        self._watch.cancel()


def favour(pid: int, nice: int = ETCD_NICE) -> None:
    """Give every thread of ``pid`` this nice value (threads made later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, int(task.name), nice)


def etcd_cpu(member: Etcd) -> float:
    assert member.proc is not None
    return process_cpu(member.proc.pid)


def main() -> None:
    kind, *args = sys.argv[1:]
    if kind == "engine":
        engine_main(*args)
    elif kind == "agents":
        endpoint, first, count, ttl, base, out = args
        agents_main(endpoint, int(first), int(count), int(ttl), base, out)
    else:
        raise SystemExit(f"unknown role {kind}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
