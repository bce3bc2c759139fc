"""How fast the unit engine launches many units: `python -m bench.schedule`.

One real etcd 3.4 on loopback; the engine in a process of its own (so its CPU time is
its own); 100 agents in this process, each with its own machine lease, watch and a
no-op runner (start = running at once). For 1,000 and 10,000 units it submits and
starts every unit through the same Registry the CLI uses, then waits until every unit
reports active, and prints:

- seconds from the first submit until every unit is launched (reported active);
- etcd requests per unit, counted by etcd itself (its gRPC metrics: every unary call
  and every lease keep-alive message, minus the benchmark's own progress polls);
- the engine's CPU seconds (user + system of its process).

fleet documented its ceiling at 100 nodes / 1,000 units; the goal here is 10,000 units
on 100 agents in under 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import etcd3
import requests

from agent.units.machine_units import MachineUnits
from agent.units.runners.noop import NoopRunner
from vulcano.keyspace import Keyspace
from vulcano.lab.cluster import Member
from vulcano.lab.services import etcd_server, stop_process
from vulcano.records import DesiredState, UnitSource, UnitState
from vulcano.registry import Registry

AGENTS = 100
SIZES = (1_000, 10_000)
MACHINE_TTL = 10
LAUNCH_TIMEOUT = 600.0
POLL_INTERVAL = 0.5


def _etcd_requests(endpoint: str) -> int:
    """Unary gRPC calls plus lease keep-alive messages etcd has received so far."""
    text = requests.get(f"{endpoint}/metrics", timeout=10).text
    total = 0
    for line in text.splitlines():
        unary = line.startswith("grpc_server_started_total{") and 'grpc_type="unary"' in line
        keepalive = line.startswith("grpc_server_msg_received_total{") and "KeepAlive" in line
        if unary or keepalive:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def _engine_main(endpoint: str, out: str) -> None:
    """The engine alone in this process until SIGTERM; then its stats and CPU to ``out``."""
    from agent.units.engine import Engine

    host, port = endpoint.split("//", 1)[1].rsplit(":", 1)
    client = etcd3.client(host=host, port=int(port), timeout=30)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    engine = Engine(client, Keyspace(), "bench-engine", stop=stop)
    engine.start()
    stop.wait()
    engine.stop()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats = engine.stats
    Path(out).write_text(
        json.dumps(
            {
                "cpu": usage.ru_utime + usage.ru_stime,
                "plans": stats.plans,
                "plan_seconds": stats.plan_seconds,
                "txns": stats.txns,
            }
        )
    )


def _unit_text(i: int) -> str:
    return f"[Unit]\nDescription=bench unit {i}\n\n[Service]\nExecStart=/bin/true {i}\n"


def run_size(n_units: int, base: Path) -> dict[str, float]:
    (base / f"etcd-{n_units}").mkdir(parents=True)
    with etcd_server(base / f"etcd-{n_units}") as member:
        endpoint = member.endpoint
        host, port = member.host_port
        client = etcd3.client(host=host, port=port, timeout=30)
        stats_file = base / f"engine-{n_units}.json"
        engine = subprocess.Popen(
            [sys.executable, "-m", "bench.schedule", "--engine", endpoint, str(stats_file)],
            start_new_session=True,
            cwd=str(Path(__file__).resolve().parent.parent),
        )
        members: list[Member] = []
        agents: list[MachineUnits] = []
        try:
            for i in range(AGENTS):
                m = Member(
                    endpoint,
                    f"bench{i:03d}",
                    base / f"agents-{n_units}" / f"{i:03d}",
                    ttl=MACHINE_TTL,
                    client=client,
                ).start()
                members.append(m)
                agents.append(MachineUnits(m, NoopRunner()))
            for a in agents:
                a.start()
            deadline = time.monotonic() + 60
            while client.get(Keyspace().engine_leader)[0] is None:
                if time.monotonic() > deadline:
                    raise RuntimeError("no engine leader")
                time.sleep(0.1)
            store = Registry(client)
            sources = [UnitSource(f"u{i:05d}.service", _unit_text(i)) for i in range(n_units)]
            names = [s.name for s in sources]
            before = _etcd_requests(endpoint)
            started = time.monotonic()
            store.submit(sources)
            store.set_desired(names, DesiredState.LAUNCHED)
            polls = 0
            while True:
                polls += 1
                active = sum(
                    1
                    for v, _ in client.get_prefix(Keyspace().unit_states)
                    if UnitState.from_json(v).active == "active"
                )
                if active >= n_units:
                    break
                if time.monotonic() - started > LAUNCH_TIMEOUT:
                    raise RuntimeError(f"only {active}/{n_units} launched")
                time.sleep(POLL_INTERVAL)
            seconds = time.monotonic() - started
            requests_used = _etcd_requests(endpoint) - before - polls
        finally:
            for a in agents:
                a.stop_event.set()
            stop_process(engine)  # type: ignore[arg-type]
            for a in agents:
                a.stop()
            for m in members:
                m.close(revoke=False)
            client.close()
        engine_stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
        return {
            "units": n_units,
            "seconds": seconds,
            "requests_per_unit": requests_used / n_units,
            "engine_cpu": float(engine_stats.get("cpu", float("nan"))),
            "plans": float(engine_stats.get("plans", 0)),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", nargs=2, metavar=("ENDPOINT", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    args = parser.parse_args()
    if args.engine:
        _engine_main(*args.engine)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="vulcano-bench-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            rows.append(run_size(size, Path(tmp)))
            print(f"# {size} units done", file=sys.stderr)
    print(f"\nunit engine: {AGENTS} agents (no-op runner), one etcd 3.4, {os.cpu_count()} cores")
    print(f"{'units':>7} {'seconds':>8} {'etcd req/unit':>14} {'engine CPU s':>13} {'plans':>6}")
    for r in rows:
        print(
            f"{int(r['units']):>7} {r['seconds']:>8.1f} {r['requests_per_unit']:>14.2f} "
            f"{r['engine_cpu']:>13.1f} {int(r['plans']):>6}"
        )


if __name__ == "__main__":
    main()
