"""Installer throughput: generate-and-store and permalink fetch, one gunicorn worker.

Runs the real Cloud Datastore emulator and the installer under gunicorn (one worker,
sync) on loopback, drives it with a few client threads, and prints a table. Run with
`python -m bench.installer` (or `nox -s bench -- installer`).
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from vulcano.lab import services
from vulcano.lab.installer import installer_server
from vulcano.lab.sshkeys import ed25519_line

_CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
TIMEOUT = 30.0


@dataclass
class Row:
    operation: str
    requests: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def cells(self) -> list[str]:
        ordered = sorted(self.latencies)
        p50 = statistics.median(ordered) * 1000
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000
        return [
            self.operation,
            str(self.requests),
            f"{self.seconds:.2f}",
            f"{self.rate:.1f}",
            f"{p50:.1f}",
            f"{p95:.1f}",
        ]


def _session(url: str) -> tuple[requests.Session, str]:
    session = requests.Session()
    page = session.get(url + "/", timeout=TIMEOUT)
    page.raise_for_status()
    match = _CSRF_RE.search(page.text)
    assert match, "no CSRF token on the form"
    return session, match.group(1)


def _create(session: requests.Session, url: str, csrf: str, flavour: str, n: int) -> str:
    response = session.post(
        url + "/installs",
        data={
            "csrf_token": csrf,
            "cluster_name": f"bench-{n}",
            "ssh_keys": ed25519_line(f"bench-{n}"),
            "flavour": flavour,
            "image": "ghcr.io/vulcano/provisioner:1.0",
            "size": "3",
        },
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    if response.status_code != 303:
        raise RuntimeError(f"create answered {response.status_code}: {response.text[:200]}")
    return response.headers["Location"].rsplit("/", 1)[1]


def _drive(
    url: str,
    name: str,
    total: int,
    clients: int,
    work: Callable[[requests.Session, str, int], None],
) -> Row:
    """Run ``work`` ``total`` times from ``clients`` threads, each with its own session."""
    url_sessions = [_session(url) for _ in range(clients)]
    latencies: list[float] = []
    errors: list[BaseException] = []
    counter = iter(range(total))
    lock = threading.Lock()

    def client(i: int) -> None:
        session, csrf = url_sessions[i]
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            started = time.perf_counter()
            try:
                work(session, csrf, n)
            except BaseException as exc:
                errors.append(exc)
                return
            with lock:
                latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    for session, _ in url_sessions:
        session.close()
    if errors:
        raise errors[0]
    return Row(name, len(latencies), elapsed, latencies)


def bench(
    validate: str, flavours: list[str], creates: int, fetches: int, clients: int
) -> list[Row]:
    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory(prefix="vulcano-bench-") as tmp,
        services.datastore_emulator(project="vulcano-bench") as emulator,
        installer_server(
            emulator, Path(tmp) / "gunicorn.log", workers=1, validate=validate
        ) as server,
    ):
        tokens: list[str] = []
        for flavour in flavours:

            def create(
                session: requests.Session, csrf: str, n: int, flavour: str = flavour
            ) -> None:
                tokens.append(_create(session, server.url, csrf, flavour, n))

            label = f"generate+store {flavour} (validators {validate})"
            rows.append(_drive(server.url, label, creates, clients, create))
        if fetches:
            rng = random.Random(1)

            def fetch(session: requests.Session, csrf: str, n: int) -> None:
                response = session.get(
                    f"{server.url}/cloud-config/{rng.choice(tokens)}", timeout=TIMEOUT
                )
                response.raise_for_status()

            rows.append(_drive(server.url, "permalink fetch", fetches, clients, fetch))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--creates", type=int, default=200, help="creates per row (200)")
    parser.add_argument("--fetches", type=int, default=1000, help="permalink fetches (1000)")
    parser.add_argument("--clients", type=int, default=4, help="client threads (4)")
    args = parser.parse_args(argv)

    rows = bench("off", ["cloud-init"], args.creates, args.fetches, args.clients)
    rows += bench("required", ["cloud-init", "flatcar"], max(1, args.creates // 4), 0, args.clients)

    header = ["operation", "requests", "seconds", "req/s", "p50 ms", "p95 ms"]
    table = [header, *(row.cells() for row in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    print(
        f"\nInstaller on one gunicorn worker (sync), Datastore emulator, "
        f"{args.clients} client threads, loopback\n"
    )
    for i, r in enumerate(table):
        print(
            "  ".join(
                c.ljust(w) if j == 0 else c.rjust(w)
                for j, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
