"""Installer throughput, and its front page while discovery watches wait.

Runs the real Cloud Datastore emulator and the installer under gunicorn on loopback.

1. app.yaml's gunicorn (its --workers and --threads, read from app.yaml's entrypoint):
   requests/s of a static file (appengine/static, the baseline: the same gunicorn and
   Flask with no Datastore), of generate-and-store (the form POST that renders the
   user-data and stores the install in Datastore) and of the permalink GET, with the CPU
   each side used meanwhile (gunicorn's processes, the emulator's JVM, the client: 100%
   is one core), which says what limited the rate;
2. generate-and-store and permalink fetch on one sync worker, with and without the
   validators;
3. front-page latency with no watch waiting and with the most watches one worker
   allows (one worker of eight threads), side by side.

Run with `python -m bench.installer` (or `nox -s bench -- installer`).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import random
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
import requests.adapters

from appengine import limits
from appengine.models import read_token
from bench._installer_client import TIMEOUT, UNBOUNDED, Row, create_install, drive
from bench._procstat import cpu_seconds, descendants, print_table, processes
from vulcano.lab import services
from vulcano.lab.installer import InstallerServer, installer_server
from vulcano.lab.loopback_http import get_from, watch_url

APP_YAML = Path(__file__).resolve().parents[1] / "app.yaml"
STATIC_FILE = "/static/style.css"
# Watches in the second table wait this long unless a registration wakes them first.
_WATCH_TIMEOUT = "60"


def bench(
    validate: str, flavours: list[str], creates: int, fetches: int, clients: int
) -> list[Row]:
    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory(prefix="vulcano-bench-") as tmp,
        services.datastore_emulator(project="vulcano-bench") as emulator,
        installer_server(
            emulator, Path(tmp) / "gunicorn.log", workers=1, validate=validate, env_extra=UNBOUNDED
        ) as server,
    ):
        tokens: list[str] = []
        for flavour in flavours:

            def create(
                session: requests.Session, csrf: str, n: int, flavour: str = flavour
            ) -> None:
                tokens.append(read_token(create_install(session, server.url, csrf, flavour, n)))

            label = f"generate+store {flavour} (validators {validate})"
            rows.append(drive(server.url, label, creates, clients, create))
        if fetches:
            rng = random.Random(1)

            def fetch(session: requests.Session, csrf: str, n: int) -> None:
                response = session.get(
                    f"{server.url}/cloud-config/{rng.choice(tokens)}", timeout=TIMEOUT
                )
                response.raise_for_status()

            rows.append(drive(server.url, "permalink fetch", fetches, clients, fetch))
    return rows


def app_yaml_gunicorn() -> tuple[int, int]:
    """(workers, threads) of app.yaml's entrypoint."""
    text = APP_YAML.read_text()
    entry = next(line for line in text.splitlines() if line.startswith("entrypoint:"))
    workers = re.search(r"--workers[ =](\d+)", entry)
    threads = re.search(r"--threads[ =](\d+)", entry)
    return int(workers.group(1)) if workers else 1, int(threads.group(1)) if threads else 1


@dataclass
class CpuRow:
    row: Row
    cpu: dict[str, float]  # side -> share of one core while the row ran

    def cells(self) -> list[str]:
        cpu = (f"{self.cpu[side] * 100:.0f}%" for side in _SIDES)
        return [*self.row.cells(), str(self.row.failed), *cpu]


_SIDES = ("gunicorn", "emulator", "client")


def _with_cpu(sides: dict[str, list[int]], run: Callable[[], Row]) -> CpuRow:
    before = {side: cpu_seconds(pids) for side, pids in sides.items()}
    mine = os.times()
    row = run()
    after = os.times()
    cpu = {side: (cpu_seconds(pids) - before[side]) / row.seconds for side, pids in sides.items()}
    client = (after.user + after.system) - (mine.user + mine.system)
    cpu["client"] = client / row.seconds
    return CpuRow(row, cpu)


def bench_app_yaml(creates: int, fetches: int, statics: int, clients: int) -> list[CpuRow]:
    """Static file, generate-and-store and permalink on app.yaml's workers and threads."""
    workers, threads = app_yaml_gunicorn()
    rows: list[CpuRow] = []
    with (
        tempfile.TemporaryDirectory(prefix="vulcano-bench-") as tmp,
        services.datastore_emulator(project="vulcano-bench") as emulator,
        installer_server(
            emulator,
            Path(tmp) / "gunicorn.log",
            workers=workers,
            threads=threads,
            validate="off",
            env_extra=UNBOUNDED,
        ) as server,
    ):
        table = processes()
        port = emulator.host.rsplit(":", 1)[1]
        jvm = [pid for pid, (_, cmd) in table.items() if f"--port={port}" in cmd]
        sides = {
            "gunicorn": descendants(server.proc.pid, table),
            "emulator": [p for root in jvm for p in descendants(root, table)],
        }

        def static(session: requests.Session, csrf: str, n: int) -> None:
            session.get(server.url + STATIC_FILE, timeout=TIMEOUT).raise_for_status()

        rows.append(
            _with_cpu(
                sides,
                lambda: drive(server.url, f"static {STATIC_FILE}", statics, clients, static),
            )
        )
        tokens: list[str] = []

        def create(session: requests.Session, csrf: str, n: int) -> None:
            tokens.append(read_token(create_install(session, server.url, csrf, "cloud-init", n)))

        for spread, label in ((False, "one address"), (True, f"{clients} addresses")):

            def creates_from(spread: bool = spread, label: str = label) -> Row:
                name = f"generate+store cloud-init, from {label}"
                return drive(server.url, name, creates, clients, create, spread, tolerate=True)

            rows.append(_with_cpu(sides, creates_from))
        rng = random.Random(1)

        def fetch(session: requests.Session, csrf: str, n: int) -> None:
            response = session.get(
                f"{server.url}/cloud-config/{rng.choice(tokens)}", timeout=TIMEOUT
            )
            response.raise_for_status()

        rows.append(
            _with_cpu(sides, lambda: drive(server.url, "permalink GET", fetches, clients, fetch))
        )
    return rows


def _front_page(url: str, samples: int) -> list[float]:
    latencies = []
    with requests.Session() as session:
        for _ in range(samples):
            started = time.perf_counter()
            session.get(url + "/", timeout=TIMEOUT).raise_for_status()
            latencies.append(time.perf_counter() - started)
    return latencies


def _watches_open(server: InstallerServer, samples: int) -> list[tuple[str, list[float]]]:
    """Front-page latencies with no watch waiting, then with the most one worker allows."""
    most = limits.DISCOVERY_WATCHES_PER_PROCESS
    rows = [("0 open watches", _front_page(server.url, samples))]
    directory = requests.get(f"{server.url}/new?size={most}", timeout=TIMEOUT).text
    with concurrent.futures.ThreadPoolExecutor(most) as pool:
        waiting = [
            pool.submit(get_from, f"127.0.1.{i + 1}", watch_url(server.url, directory))
            for i in range(most)
        ]
        time.sleep(2.0)  # every watch is in its slot (the test proves the refusal)
        refused = get_from("127.0.2.1", watch_url(server.url, directory), timeout=TIMEOUT)
        if refused.status != 503:
            raise RuntimeError(f"the watch past the bound answered {refused.status}")
        rows.append((f"{most} open watches (the most)", _front_page(server.url, samples)))
        if any(w.done() for w in waiting):
            raise RuntimeError("a watch ended before the front page was measured")
        requests.put(
            f"{directory}/a1?prevExist=false",
            data={"value": "a1=http://10.0.0.1:2380"},
            timeout=TIMEOUT,
        ).raise_for_status()
        for w in waiting:
            w.result()
    return rows


def bench_watches(samples: int) -> list[tuple[str, list[float]]]:
    with (
        tempfile.TemporaryDirectory(prefix="vulcano-bench-") as tmp,
        services.datastore_emulator(project="vulcano-bench") as emulator,
        installer_server(
            emulator,
            Path(tmp) / "gunicorn.log",
            workers=1,
            threads=8,
            validate="off",
            env_extra={**UNBOUNDED, "VULCANO_DISCOVERY_WATCH_TIMEOUT": _WATCH_TIMEOUT},
        ) as server,
    ):
        return _watches_open(server, samples)


def _watch_table(rows: list[tuple[str, list[float]]]) -> list[list[str]]:
    base = statistics.median(rows[0][1])
    table = [["front page", "requests", "p50 ms", "p95 ms", "p50 vs 0 watches"]]
    for name, latencies in rows:
        ordered = sorted(latencies)
        p50 = statistics.median(ordered)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        table.append(
            [
                name,
                str(len(ordered)),
                f"{p50 * 1000:.1f}",
                f"{p95 * 1000:.1f}",
                f"{p50 / base:.2f}x",
            ]
        )
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--creates", type=int, default=200, help="creates per row (200)")
    parser.add_argument("--fetches", type=int, default=1000, help="permalink fetches (1000)")
    parser.add_argument("--clients", type=int, default=4, help="client threads (4)")
    parser.add_argument("--pages", type=int, default=200, help="front pages per row (200)")
    parser.add_argument("--statics", type=int, default=2000, help="static GETs (2000)")
    parser.add_argument(
        "--app-clients",
        type=int,
        default=0,
        help="client threads against app.yaml's gunicorn (default: its workers x threads)",
    )
    parser.add_argument(
        "--only-watches", action="store_true", help="only the front page under watches"
    )
    parser.add_argument(
        "--only-app-yaml", action="store_true", help="only the table on app.yaml's gunicorn"
    )
    args = parser.parse_args(argv)

    if not args.only_watches:
        workers, threads = app_yaml_gunicorn()
        clients = args.app_clients or workers * threads
        load = os.getloadavg()
        app_rows = bench_app_yaml(args.creates, args.fetches, args.statics, clients)
        print(
            f"\nInstaller on app.yaml's gunicorn ({workers} workers x {threads} threads), "
            f"Datastore emulator, {clients} client threads, loopback, validators off "
            f"(load 1m {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after)\n"
        )
        header = ["operation", "requests", "seconds", "req/s", "p50 ms", "p95 ms", "failed"]
        header += [f"CPU {side}" for side in _SIDES]
        print_table([header, *(row.cells() for row in app_rows)])
        static_rate = app_rows[0].row.rate
        for row in app_rows[1:]:
            print(f"{row.row.operation}: {row.row.rate / static_rate:.2f} of the static rate")
        if args.only_app_yaml:
            return

    if not args.only_watches:
        rows = bench("off", ["cloud-init"], args.creates, args.fetches, args.clients)
        rows += bench(
            "required", ["cloud-init", "flatcar"], max(1, args.creates // 4), 0, args.clients
        )
        header = ["operation", "requests", "seconds", "req/s", "p50 ms", "p95 ms"]
        print(
            f"\nInstaller on one gunicorn worker (sync), Datastore emulator, "
            f"{args.clients} client threads, loopback\n"
        )
        print_table([header, *(row.cells() for row in rows)])

    print(
        "\nFront page, one gunicorn worker of 8 threads (as on App Engine), one client, "
        "with discovery watches waiting\n"
    )
    print_table(_watch_table(bench_watches(args.pages)))


if __name__ == "__main__":
    main()
