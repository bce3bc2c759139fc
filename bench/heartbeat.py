"""Heartbeat ingest: Datastore writes per cluster per minute, and heartbeats/s one worker takes.

Runs the real Cloud Datastore emulator and the installer under gunicorn on loopback (one
worker of 8 threads, as on App Engine). Simulated reporters, one per install made with
the form, POST cluster summaries of 3, 30 and 300 machines with their reporting secret,
as fast as the worker answers; the summaries' ``at`` advances by the reporting interval,
so minutes of a cluster's life pass in seconds (the per-minute bound is lifted for it).
Writes are counted at the worker's Commit RPCs (bench._datastore_writes): the history's
own (ClusterHeartbeat) and every kind (with what the summary hooks, e.g. alerts, write);
the per-minute columns are of every kind.
Run with `python -m bench.heartbeat` (or `nox -s bench -- heartbeat`).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from appengine.models import read_token
from bench._datastore_writes import WRITES_FILE_VAR, read_writes
from vulcano import cloudconfig
from vulcano.heartbeat import ClusterSummary, MachineHealth, MachineSummary, UnitSummary
from vulcano.lab import services
from vulcano.lab.installer import installer_server
from vulcano.lab.sshkeys import ed25519_line

TIMEOUT = 30.0
T0 = 1_800_000_000.0


@dataclass
class Row:
    machines: int
    clusters: int
    heartbeats: int
    writes: Counter[str]
    seconds: float
    latencies: list[float]
    interval: float

    def cells(self) -> list[str]:
        per_beat = sum(self.writes.values()) / self.heartbeats
        own = self.writes["ClusterHeartbeat"] / self.heartbeats
        ordered = sorted(self.latencies)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        return [
            str(self.machines),
            str(self.clusters),
            str(self.heartbeats),
            f"{own:.2f}",
            f"{per_beat:.2f}",
            f"{per_beat * 60 / self.interval:.1f}",
            f"{per_beat * 60 / 60:.1f}",
            f"{self.heartbeats / self.seconds:.1f}",
            f"{statistics.median(ordered) * 1000:.1f}",
            f"{p95 * 1000:.1f}",
        ]


def _install(url: str, n: int) -> str:
    """Make an install with the form; its reporting secret, from the served document."""
    with requests.Session() as session:
        page = session.get(url + "/", timeout=TIMEOUT).text
        csrf = page.split('name="csrf_token"', 1)[1].split('value="', 1)[1].split('"', 1)[0]
        made = session.post(
            url + "/installs",
            data={
                "csrf_token": csrf,
                "cluster_name": f"bench-{n}",
                "ssh_keys": ed25519_line(f"bench-{n}"),
                "flavour": "cloud-init",
                "image": "ghcr.io/vulcano/provisioner:1.0",
                "size": "3",
            },
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        if made.status_code != 303:
            raise RuntimeError(f"create answered {made.status_code}: {made.text[:200]}")
        manage = made.headers["Location"].rsplit("/", 1)[1]
        served = session.get(f"{url}/cloud-config/{read_token(manage)}", timeout=TIMEOUT).text
    files = {f["path"]: f["content"] for f in yaml.safe_load(served)["write_files"]}
    return str(files[cloudconfig.REPORT_TOKEN_HOST_PATH])


def _summary(cluster: int, seq: int, machines: int, interval: float) -> ClusterSummary:
    at = T0 + seq * interval
    listed = [
        MachineSummary(
            machine_id=f"{cluster:04x}{i:04x}" + "0" * 24,
            # a steady cluster: the same few machines down throughout (a flapping one
            # would be an alert per flip, which is the alerts' cost, not the history's)
            health=MachineHealth.DOWN if i % 17 == 16 else MachineHealth.UP,
            last_seen=at - 3,
            hostname=f"node-{i}",
            public_ip=f"10.{cluster % 250}.{i // 250}.{i % 250 + 1}",
            load1=(i + seq) % 5 / 2,
            cpu_percent=float((i * 7 + seq) % 100),
            mem_percent=50.0,
            disk_percent=30.0,
        )
        for i in range(machines)
    ]
    units = [
        UnitSummary(f"app@{i}.service", listed[i].machine_id, "active", "running")
        for i in range(machines)
    ]
    return ClusterSummary(f"bench-{cluster}", seq, at, interval, listed, units)


def _report(url: str, secret: str, cluster: int, machines: int, beats: int, interval: float,
            latencies: list[float], lock: threading.Lock) -> None:  # fmt: skip
    bodies = [_summary(cluster, seq, machines, interval).to_json() for seq in range(1, beats + 1)]
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {secret}"
        for body in bodies:
            started = time.perf_counter()
            answer = session.post(f"{url}/api/heartbeat", data=body, timeout=TIMEOUT)
            took = time.perf_counter() - started
            if answer.status_code != 200:
                raise RuntimeError(f"heartbeat answered {answer.status_code}: {answer.text}")
            with lock:
                latencies.append(took)


def _drive(
    url: str, secrets: list[str], size: int, beats: int, interval: float
) -> tuple[list[float], float]:
    """One reporter thread per secret, all at once; their latencies and the time taken."""
    latencies: list[float] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def run(c: int, secret: str) -> None:
        try:
            _report(url, secret, c, size, beats, interval, latencies, lock)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c, s)) for c, s in enumerate(secrets)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return latencies, time.perf_counter() - started


def bench(sizes: list[int], clusters: int, beats: int, interval: float) -> list[Row]:
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="vulcano-bench-") as tmp,
        services.datastore_emulator(project="vulcano-bench") as emulator,
    ):
        writes_file = str(Path(tmp) / "writes")
        env = {
            "GUNICORN_CMD_ARGS": "-c python:bench._datastore_writes",
            WRITES_FILE_VAR: writes_file,
            "VULCANO_INSTALLS_PER_CLIENT_PER_HOUR": "1000000",
            "VULCANO_HEARTBEATS_PER_INSTALL_PER_MINUTE": "1000000",
        }
        with installer_server(
            emulator, Path(tmp) / "gunicorn.log", threads=8, validate="off", env_extra=env
        ) as server:
            for size in sizes:
                secrets = [_install(server.url, size * 1000 + c) for c in range(clusters)]
                before = read_writes(writes_file)
                latencies, elapsed = _drive(server.url, secrets, size, beats, interval)
                writes = read_writes(writes_file) - before
                rows.append(
                    Row(size, clusters, clusters * beats, writes, elapsed, latencies, interval)
                )
    return rows


def _print_table(table: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for i, r in enumerate(table):
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clusters", type=int, default=8, help="reporters at once (8)")
    parser.add_argument("--beats", type=int, default=60, help="heartbeats per cluster (60)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between (10)")
    parser.add_argument("--sizes", default="3,30,300", help="machines per cluster (3,30,300)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = bench(sizes, args.clusters, args.beats, args.interval)
    header = [
        "machines",
        "clusters",
        "heartbeats",
        "history writes/beat",
        "all writes/beat",
        f"writes/cluster/min @{args.interval:g}s",
        "@60s",
        "beats/s",
        "p50 ms",
        "p95 ms",
    ]
    print(
        f"\nHeartbeat ingest: one gunicorn worker of 8 threads, Datastore emulator, "
        f"{args.clusters} reporters at once, loopback; writes counted at Commit\n"
    )
    _print_table([header, *(row.cells() for row in rows)])
    kinds = sorted({kind for row in rows for kind in row.writes})
    print(f"\nentity kinds written: {', '.join(kinds)}")


if __name__ == "__main__":
    main()
