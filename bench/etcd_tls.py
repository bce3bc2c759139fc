"""etcd requests/s with mutual TLS vs in the clear, side by side in one run.

Starts two real single-member etcd 3.4 on loopback, one plain (http://) and one requiring
client certificates of its own test CA (https://), and drives each through Vulcano's own
client (`vulcano.etcd.connect`, the one every part uses): puts, then range reads of the
keys written, from several threads each with its own client (its own gRPC channel, as
separate agents have). Each cell runs for ``--seconds``, in ``--rounds`` slices taken in
turn with the other mode's; the whole run stays under a
minute with the defaults.
Run with `python -m bench.etcd_tls` (or `nox -s bench -- etcd_tls`).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vulcano import etcd as vulcano_etcd
from vulcano.lab import services

VALUE = "x" * 256  # about a machine record


@dataclass
class Cell:
    mode: str
    operation: str
    threads: int
    requests: int
    seconds: float
    latencies: list[float]

    def cells(self) -> list[str]:
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return [
            self.mode,
            self.operation,
            str(self.threads),
            str(self.requests),
            f"{self.requests / self.seconds:.0f}",
            f"{statistics.median(ordered) * 1000:.2f}",
            f"{p99 * 1000:.2f}",
        ]


def _drive(
    clients: list[Any], operation: Callable[[Any, int, int], None], seconds: float
) -> tuple[int, list[float]]:
    stop = time.monotonic() + seconds
    counts = [0] * len(clients)
    latencies: list[list[float]] = [[] for _ in clients]

    def worker(index: int) -> None:
        client = clients[index]
        n = 0
        while time.monotonic() < stop:
            started = time.perf_counter()
            operation(client, index, n)
            latencies[index].append(time.perf_counter() - started)
            n += 1
        counts[index] = n

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts), [x for per in latencies for x in per]


def _put(client: Any, index: int, n: int) -> None:
    client.put(f"/bench/{index}/{n % 1000}", VALUE)


def _range(client: Any, index: int, n: int) -> None:
    # a prefix of 100 records, as a list of machines or units reads
    list(client.get_prefix(f"/bench/{index}/{n % 10}"))


def measure(
    modes: dict[str, tuple[str, vulcano_etcd.TLSFiles | None]],
    threads: int,
    seconds: float,
    rounds: int,
) -> list[Cell]:
    """Each (mode, operation) for ``seconds``, in ``rounds`` slices taken in turn, so a
    busier moment of a shared machine falls on every mode alike."""
    clients = {
        mode: [vulcano_etcd.connect(endpoint, tls=tls) for _ in range(threads)]
        for mode, (endpoint, tls) in modes.items()
    }
    cells = {
        (mode, op): Cell(mode, op, threads, 0, 0.0, []) for mode in modes for op in ("put", "range")
    }
    try:
        for per_mode in clients.values():
            for c in per_mode:
                c.status()  # connected (and, with TLS, handshaken) before the clock starts
        for _ in range(rounds):
            for op, operation in (("put", _put), ("range", _range)):
                for mode, per_mode in clients.items():
                    done, latencies = _drive(per_mode, operation, seconds / rounds)
                    cell = cells[(mode, op)]
                    cell.requests += done
                    cell.seconds += seconds / rounds
                    cell.latencies += latencies
        return [cells[(mode, op)] for mode in modes for op in ("put", "range")]
    finally:
        for per_mode in clients.values():
            for c in per_mode:
                c.close()


def _print_table(table: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for n, r in enumerate(table):
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="per cell (default 3)")
    parser.add_argument(
        "--threads", default="1,8", help="comma-separated thread counts (default 1,8)"
    )
    parser.add_argument("--rounds", type=int, default=4, help="slices per cell (default 4)")
    args = parser.parse_args(argv)
    counts = [int(t) for t in args.threads.split(",")]
    rows: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="vulcano-bench-tls-") as tmp:
        base = Path(tmp)
        (base / "plain").mkdir()
        (base / "tls").mkdir()
        with (
            services.etcd_server(base / "plain") as plain,
            services.etcd_server(base / "tls", tls=True) as secure,
        ):
            assert secure.tls is not None
            modes = {
                "http": (plain.endpoint, None),
                "https+mTLS": (secure.endpoint, secure.tls.client_files()),
            }
            for threads in counts:
                rows += measure(modes, threads, args.seconds, args.rounds)
    header = ["mode", "op", "threads", "requests", "req/s", "p50 ms", "p99 ms"]
    _print_table([header, *(r.cells() for r in rows)])
    print()
    for threads in counts:
        for op in ("put", "range"):
            plain_rate, tls_rate = (
                r.requests / r.seconds
                for mode in ("http", "https+mTLS")
                for r in rows
                if r.mode == mode and r.operation == op and r.threads == threads
            )
            print(f"{op} x{threads}: TLS at {tls_rate / plain_rate:.0%} of plain")


if __name__ == "__main__":
    main()
