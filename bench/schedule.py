"""How fast the unit engine launches many units: `python -m bench.schedule`.

One real etcd 3.4 on loopback; the engine in a process of its own; the agents (real
``MachineUnits`` on real machine leases, no-op runner: start = running at once) spread
over ``--procs`` processes (bench/_farm.py). It starts every unit from its file with
the Registry call `vulcano start <files>` makes (``--split``: submit, then start), then
waits until the agents report every unit active, and prints per size:

- seconds from the first submit until every unit is launched (reported active);
- etcd requests per unit, counted by etcd itself (its gRPC metrics: every unary call
  and every lease keep-alive message), and how they split by gRPC method;
- CPU seconds of the engine, of all agent processes together, of etcd and of this
  driver (which submits); the engine's peak RSS; the machine's load average.

`--engine-client http,grpc` runs each size with the engine on each client in turn (the
agent's is etcd's JSON gateway; python-etcd3's gRPC is what it used before), side by side.

Without arguments: 100 agents, 1,000 and 10,000 units. The issue's run:
`python -m bench.schedule --agents 1000 --units 100000` (goal: under 60 s on 2 cores,
at most 1.5 etcd requests a unit).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench._farm import (
    ENGINE_CLIENT_VAR,
    TLS_VARS,
    ActiveUnits,
    Farm,
    etcd_cpu,
    etcd_requests_by_method,
    favour,
    tls_from_environment,
)
from vulcano import etcd as vulcano_etcd
from vulcano.lab.services import Etcd, etcd_server
from vulcano.records import DesiredState, UnitSource
from vulcano.registry import Registry

AGENTS = 100
SIZES = (1_000, 10_000)
PROCS = 4
MACHINE_TTL = 10
LAUNCH_TIMEOUT = 600.0
POLL_INTERVAL = 0.2


def _unit_text(i: int) -> str:
    return f"[Unit]\nDescription=bench unit {i}\n\n[Service]\nExecStart=/bin/true {i}\n"


def run_size(
    n_agents: int,
    n_units: int,
    procs: int,
    base: Path,
    tls: bool = False,
    split: bool = False,
    engine_client: str = "http",
) -> dict[str, object]:
    """Launch ``n_units`` on ``n_agents`` agents in ``procs`` processes; the figures.
    With ``tls`` etcd requires client certificates and every process shows one; with
    ``split`` the units are submitted, then started (two commands, as before)."""
    (base / "etcd").mkdir(parents=True)
    os.environ[ENGINE_CLIENT_VAR] = engine_client  # read by the farm's engine process
    with etcd_server(base / "etcd", tls=tls) as member, _tls_environment(member):
        assert member.proc is not None
        favour(member.proc.pid)
        client = vulcano_etcd.connect(member.endpoint, timeout=60, tls=tls_from_environment())
        farm = Farm(member.endpoint, base / "farm", n_agents, procs, MACHINE_TTL).start()
        watch = ActiveUnits(client)
        try:
            store = Registry(client)
            sources = [UnitSource(f"u{i:06d}.service", _unit_text(i)) for i in range(n_units)]
            names = [s.name for s in sources]
            before = etcd_requests_by_method(member.endpoint)
            etcd_before = etcd_cpu(member)
            me_before = resource.getrusage(resource.RUSAGE_SELF)
            started = time.monotonic()
            if split:  # `vulcano submit` of the files, then `vulcano start` of the names
                store.submit(sources)
                submitted = time.monotonic() - started
                store.set_desired(names, DesiredState.LAUNCHED)
            else:  # `vulcano start` of the files: each file and its start in one transaction
                store.submit(sources, desired=DesiredState.LAUNCHED)
                submitted = time.monotonic() - started
            desired = time.monotonic() - started
            while (active := watch.count()) < n_units:
                if time.monotonic() - started > LAUNCH_TIMEOUT:
                    raise RuntimeError(f"only {active}/{n_units} launched")
                time.sleep(POLL_INTERVAL)
            seconds = time.monotonic() - started
            load = os.getloadavg()[0]
            after = etcd_requests_by_method(member.endpoint)
            etcd_used = etcd_cpu(member) - etcd_before
            me = resource.getrusage(resource.RUSAGE_SELF)
        finally:
            watch.close()
            results = farm.stop()
            client.close()
        by_method = {k: v - before.get(k, 0) for k, v in after.items() if v > before.get(k, 0)}
        engine = results["engine"]
        return {
            "tls": tls,
            "engine_client": engine_client,
            "agents": n_agents,
            "units": n_units,
            "procs": procs,
            "seconds": seconds,
            "submitted": submitted,
            "desired": desired,
            "requests_per_unit": sum(by_method.values()) / n_units,
            "by_method": by_method,
            "engine_cpu": float(engine.get("cpu", float("nan"))),
            "engine_rss": float(engine.get("max_rss_mb", float("nan"))),
            "plans": int(engine.get("plans", 0)),
            "replans": int(engine.get("replans", 0)),
            "agents_cpu": float(results["agents_cpu"]),
            "etcd_cpu": etcd_used,
            "driver_cpu": me.ru_utime + me.ru_stime - me_before.ru_utime - me_before.ru_stime,
            "load": load,
        }


@contextlib.contextmanager
def _tls_environment(member: Etcd) -> Iterator[None]:
    """The farm's processes (and this one) take the client's files from the agent's
    own variables while a TLS member runs."""
    if member.tls is None:
        yield
        return
    files = member.tls.client_files()
    values = dict(zip(TLS_VARS, (str(files.cacert), str(files.cert), str(files.key)), strict=True))
    os.environ.update(values)
    try:
        yield
    finally:
        for name in TLS_VARS:
            os.environ.pop(name, None)


def _print(rows: list[dict[str, object]]) -> None:
    print(f"\nunit engine: no-op runner, one etcd 3.4, {os.cpu_count()} cores")
    head = (
        f"{'tls':>3} {'engine on':>9} {'agents':>6} {'procs':>5} {'units':>7} {'seconds':>8} "
        f"{'req/unit':>9} "
        f"{'engine CPU':>10} {'engine MB':>9} {'agents CPU':>10} {'etcd CPU':>8} "
        f"{'driver CPU':>10} {'plans':>6} {'replans':>7} {'load1':>5}"
    )
    print(head)
    for r in rows:
        print(
            f"{'on' if r['tls'] else 'off':>3} {r['engine_client']:>9} "
            f"{r['agents']:>6} {r['procs']:>5} "
            f"{r['units']:>7} {r['seconds']:>8.1f} "
            f"{r['requests_per_unit']:>9.2f} {r['engine_cpu']:>10.1f} {r['engine_rss']:>9.0f} "
            f"{r['agents_cpu']:>10.1f} {r['etcd_cpu']:>8.1f} {r['driver_cpu']:>10.1f} "
            f"{r['plans']:>6} {r['replans']:>7} {r['load']:>5.2f}"
        )
    for r in rows:
        split = ", ".join(f"{k} {v}" for k, v in sorted(r["by_method"].items()))  # type: ignore[attr-defined]
        print(
            f"# {r['units']} units: submitted in {r['submitted']:.1f}s, started in "
            f"{r['desired']:.1f}s; etcd requests: {split}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=AGENTS)
    parser.add_argument("--units", type=int, help="one size (default: 1,000 and 10,000)")
    parser.add_argument("--procs", type=int, default=PROCS, help="agent processes")
    parser.add_argument(
        "--tls", action="store_true", help="each size also on mutual TLS, side by side"
    )
    parser.add_argument(
        "--split", action="store_true", help="submit the files, then start the names"
    )
    parser.add_argument(
        "--engine-client",
        default="http",
        help="the engine's etcd client, comma-separated to run each in turn: http, grpc",
    )
    args = parser.parse_args()
    clients = [c.strip() for c in args.engine_client.split(",") if c.strip()]
    if not clients or set(clients) - {"http", "grpc"}:
        parser.error(f"--engine-client: http or grpc, comma-separated (got {args.engine_client!r})")
    sizes = [args.units] if args.units else list(SIZES)
    rows = []
    with tempfile.TemporaryDirectory(prefix="vulcano-bench-") as tmp:
        for size in sizes:
            for tls in (False, True) if args.tls else (False,):
                for i, engine_client in enumerate(clients):
                    where = Path(tmp) / f"{size}{'-tls' if tls else ''}-{i}-{engine_client}"
                    rows.append(
                        run_size(
                            args.agents, size, args.procs, where, tls, args.split, engine_client
                        )
                    )
                    print(
                        f"# {size} units done (tls {'on' if tls else 'off'}, "
                        f"engine on {engine_client})",
                        file=sys.stderr,
                    )
    _print(rows)


if __name__ == "__main__":
    main()
