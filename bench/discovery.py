"""Cluster formation through the installer's discovery service, against a static bootstrap.

Starts the real Cloud Datastore emulator and the installer under gunicorn (2 workers x 8
threads, as app.yaml runs it; production watch timeout), then, for 3 and for 5 members,
alternates rounds of: N real etcd 3.4 processes on loopback started with
`--discovery=<installer URL>`, and the same N started with a static `--initial-cluster`.
A round's time runs from starting the processes until every member answers healthy and
lists N members. Prints a table of medians and the ratio discovery / static (goal: at
most 1.5).

Run with `python -m bench.discovery` (or `nox -s bench -- discovery`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from vulcano.lab import services
from vulcano.lab.installer import installer_server
from vulcano.lab.poll import wait_for
from vulcano.lab.services import new_etcd

SIZES = (3, 5)
GOAL = 1.5
FORM_TIMEOUT = 60.0
POLL = 0.01
HTTP_TIMEOUT = 10.0


def _json(url: str, body: bytes | None = None) -> object:
    # urllib, not requests: no session or pool warm-up skewing the first poll.
    with urllib.request.urlopen(url, body, timeout=HTTP_TIMEOUT) as answer:  # noqa: S310
        return json.loads(answer.read())


def _formed(cluster: list[services.Etcd]) -> bool:
    for member in cluster:
        health = _json(f"{member.client_url}/health")
        if not isinstance(health, dict) or health.get("health") != "true":
            return False
    # etcd 3.4's gRPC gateway: the v3 member list, as `etcdctl member list` asks for it.
    listing = _json(f"{cluster[0].client_url}/v3/cluster/member/list", b"{}")
    return isinstance(listing, dict) and len(listing.get("members", [])) == len(cluster)


def _time_formation(cluster: list[services.Etcd]) -> float:
    start = time.monotonic()
    for member in cluster:
        member.start()
    try:
        wait_for(lambda: _formed(cluster), FORM_TIMEOUT, "cluster", interval=POLL)
        return time.monotonic() - start
    except TimeoutError:
        logs = "\n".join(
            f"--- {m.name} (exit {m.proc.poll() if m.proc else None})\n"
            + "\n".join(line for line in m.log().splitlines() if " W | " not in line)[-3000:]
            for m in cluster
        )
        raise SystemExit(f"{len(cluster)} members did not form a cluster:\n{logs}") from None
    finally:
        for member in cluster:
            member.stop()


def discovery_round(base: Path, installer: str, size: int) -> float:
    answer = requests.get(f"{installer}/new", params={"size": size}, timeout=HTTP_TIMEOUT)
    answer.raise_for_status()
    cluster = [
        new_etcd(base, f"d{i}", extra_args=["--discovery", answer.text]) for i in range(size)
    ]
    return _time_formation(cluster)


def static_round(base: Path, size: int) -> float:
    cluster = [new_etcd(base, f"s{i}") for i in range(size)]
    initial = ",".join(f"{m.name}={m.peer_url}" for m in cluster)
    for member in cluster:
        member.extra_args = [
            "--initial-cluster",
            initial,
            "--initial-cluster-state",
            "new",
            "--initial-cluster-token",
            base.name,
        ]
    return _time_formation(cluster)


@dataclass
class Row:
    size: int
    discovery: list[float] = field(default_factory=list)
    static: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return statistics.median(self.discovery) / statistics.median(self.static)

    def cells(self) -> list[str]:
        def spread(times: list[float]) -> str:
            return f"{statistics.median(times):.2f} ({min(times):.2f}-{max(times):.2f})"

        return [
            str(self.size),
            str(len(self.discovery)),
            spread(self.discovery),
            spread(self.static),
            f"{self.ratio:.2f}",
        ]


def _print_table(rows: list[Row]) -> None:
    header = ["members", "rounds", "discovery s, median (min-max)", "static s", "ratio"]
    table = [header, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))


def run(rounds: int, log: Callable[[str], None]) -> list[Row]:
    rows = [Row(size) for size in SIZES]
    with tempfile.TemporaryDirectory(prefix="vulcano-bench-discovery-") as tmp:
        root = Path(tmp)
        log("starting the Cloud Datastore emulator and the installer (gunicorn)…")
        with (
            services.datastore_emulator(project="vulcano-bench") as emulator,
            installer_server(
                emulator, root / "installer.log", workers=2, threads=8, validate="off"
            ) as srv,
        ):
            for n in range(rounds):
                for row in rows:
                    # Alternate which goes first so machine load drifts evenly over both.
                    order = ("discovery", "static") if n % 2 == 0 else ("static", "discovery")
                    for kind in order:
                        base = root / f"{kind}-{row.size}-{n}"
                        base.mkdir()
                        if kind == "discovery":
                            row.discovery.append(discovery_round(base, srv.url, row.size))
                        else:
                            row.static.append(static_round(base, row.size))
                    log(
                        f"round {n + 1}/{rounds}, {row.size} members: discovery "
                        f"{row.discovery[-1]:.2f}s, static {row.static[-1]:.2f}s"
                    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per size and kind (5)")
    args = parser.parse_args(argv)
    rows = run(args.rounds, lambda line: print(line, file=sys.stderr, flush=True))
    print()
    _print_table(rows)
    worst = max(row.ratio for row in rows)
    verdict = "meets" if worst <= GOAL else "misses"
    print(f"\nworst ratio discovery/static: {worst:.2f} ({verdict} the goal of <= {GOAL})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
