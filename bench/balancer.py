"""The balancer with real nginx and HAProxy: `python -m bench.balancer`.

Three HTTP backends (processes on 127.0.0.x) behind two balancers at once, one nginx
and one HAProxy, fed from one real etcd. Measured in one run:

- requests/s through each balancer and straight to one backend (two client processes,
  one connection each, for a few seconds each);
- a burst of 100 endpoint changes (instances coming up, and some going again, every
  20 ms): reloads of nginx, reloads and runtime-API changes of HAProxy;
- seconds from an endpoint's withdrawal to the last request that still reached it
  (a client loop runs through the balancer meanwhile), and to the status saying so.
"""

from __future__ import annotations

import multiprocessing
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from agent.balancer.backends import Listen
from agent.balancer.component import Balancer
from vulcano import etcd as vulcano_etcd
from vulcano.endpoints import Endpoint, PortSpec
from vulcano.keyspace import Keyspace
from vulcano.lab import services
from vulcano.lab.balancer import ClientLoop, put_endpoint, running_balancer
from vulcano.lab.httpbackend import HttpBackend
from vulcano.lab.poll import wait_for
from vulcano.lab.ports import reserve_port

KS = Keyspace()
LOAD_SECONDS = 2.5
CLIENTS = 2
CHANGES = 100
CHANGE_INTERVAL = 0.02
WITHDRAWALS = 3
WAIT = 60.0


def _load(host: str, port: int, seconds: float) -> int:
    import http.client

    connection = http.client.HTTPConnection(host, port, timeout=5)
    done = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        if response.status == 200:
            done += 1
    connection.close()
    return done


def requests_per_second(host: str, port: int) -> float:
    with multiprocessing.get_context("spawn").Pool(CLIENTS) as pool:
        counts = pool.starmap(_load, [(host, port, LOAD_SECONDS)] * CLIENTS)
    return sum(counts) / LOAD_SECONDS


def burst(client: Any, rnd: random.Random, tag: str) -> set[str]:
    """CHANGES endpoint changes; returns the backends that should be live after them."""
    live: dict[str, str] = {}  # unit -> address:port
    for n in range(CHANGES):
        if live and rnd.random() < 0.3:
            unit = rnd.choice(sorted(live))
            client.delete(KS.endpoint(unit, "b"))
            del live[unit]
        else:
            unit = f"web@{tag}{n}.service"
            address = f"127.0.{2 + (tag == 'c')}.{n + 1}"
            e = Endpoint(unit, "b", address, (PortSpec(80),))
            client.put(KS.endpoint(unit, "b"), e.to_json())
            live[unit] = f"{address}:80"
        time.sleep(CHANGE_INTERVAL)
    return set(live.values())


def withdrawal(
    client: Any, lb: Balancer, backends: list[HttpBackend], i: int
) -> tuple[float, float]:
    """(seconds to the last request reaching it, seconds to the status) for backend i."""
    victim = backends[i]
    unit, machine = f"web@{i + 1}.service", f"m{i + 1}"
    with ClientLoop(lb.listen.host, lb.listen.port) as loop:
        loop.wait_answers(20)
        t0 = time.monotonic()
        client.delete(KS.endpoint(unit, machine))
        wait_for(lambda: victim.name not in lb.status.backends, WAIT, "withdrawal")
        status_at = time.monotonic() - t0
        loop.wait_answers(100)
    last = max((at for at, body in loop.answers if body == victim.name and at >= t0), default=t0)
    put_endpoint(client, KS, unit, machine, victim)
    wait_for(lambda: victim.name in lb.status.backends, WAIT, "return")
    return last - t0, status_at


def measure_burst(
    client: Any, ng: Balancer, hp: Balancer, names: list[str], tag: str, seed: int
) -> list[tuple[str, str]]:
    n0, h0, r0 = ng.status.reloads, hp.status.reloads, hp.status.runtime_changes
    started = time.monotonic()
    expected = burst(client, random.Random(seed), tag) | set(names)
    for lb in (ng, hp):
        wait_for(lambda lb=lb: set(lb.status.backends) == expected, WAIT, "burst")
    took = time.monotonic() - started
    slots = len(hp.slots)
    client.delete_prefix(f"{KS.endpoints}web@{tag}")  # the burst's endpoints, not ours
    for lb in (ng, hp):
        wait_for(lambda lb=lb: lb.status.backends == names, WAIT, "cleanup")
    return [
        (f"burst {tag}: {CHANGES} endpoint changes every {CHANGE_INTERVAL * 1000:.0f}ms, "
         f"then their {len(expected) - 3} removed at once: nginx reloads",
         str(ng.status.reloads - n0)),
        (f"burst {tag}: haproxy reloads (slots {slots} after)", str(hp.status.reloads - h0)),
        (f"burst {tag}: haproxy runtime-API changes", str(hp.status.runtime_changes - r0)),
        (f"burst {tag}: seconds until both serve the burst's final set", f"{took:.1f}"),
    ]  # fmt: skip


def main() -> None:
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="vulcano-bench-balancer-") as tmp:
        base = Path(tmp)
        backends = [
            HttpBackend(f"127.0.0.{31 + i}", reserve_port(f"127.0.0.{31 + i}")).start()
            for i in range(3)
        ]
        try:
            (base / "etcd").mkdir()
            with services.etcd_server(base / "etcd") as etcd:
                client = vulcano_etcd.connect(etcd.endpoint)
                for i, b in enumerate(backends):
                    put_endpoint(client, KS, f"web@{i + 1}.service", f"m{i + 1}", b)
                listens = [Listen("127.0.0.1", reserve_port()) for _ in range(4)]
                one = "web@1.service"
                with (
                    running_balancer(etcd.endpoint, "nginx", base / "n", listens[0]) as ng,
                    running_balancer(etcd.endpoint, "haproxy", base / "h", listens[1]) as hp,
                    running_balancer(
                        etcd.endpoint, "nginx", base / "n1", listens[2], one, name="n1"
                    ) as ng1,
                    running_balancer(
                        etcd.endpoint, "haproxy", base / "h1", listens[3], one, name="h1"
                    ) as hp1,
                ):
                    names = sorted(b.name for b in backends)
                    for lb in (ng, hp):
                        wait_for(lambda lb=lb: lb.status.backends == names, WAIT, "serving")
                    for lb in (ng1, hp1):
                        wait_for(lambda lb=lb: len(lb.status.backends) == 1, WAIT, "serving")
                    rps = [
                        ("straight to one backend", backends[0].address, backends[0].port),
                        ("through nginx, 1 backend", *_hostport(listens[2])),
                        ("through haproxy, 1 backend", *_hostport(listens[3])),
                        ("through nginx, 3 backends", *_hostport(listens[0])),
                        ("through haproxy, 3 backends", *_hostport(listens[1])),
                    ]
                    for label, host, port in rps:
                        rows.append(
                            (f"requests/s {label}", f"{requests_per_second(host, port):.0f}")
                        )
                    rows += measure_burst(client, ng, hp, names, "b", 0)  # grows past the slots
                    rows += measure_burst(client, ng, hp, names, "c", 1)  # fits in them now
                    for label, lb in (("nginx", ng), ("haproxy", hp)):
                        results = [
                            withdrawal(client, lb, backends, i % 3) for i in range(WITHDRAWALS)
                        ]
                        last = [r[0] for r in results]
                        status = [r[1] for r in results]
                        rows.append(
                            (f"{label}: withdrawal → last request reaching it (s), "
                             f"median/max of {WITHDRAWALS}",
                             f"{statistics.median(last):.3f}/{max(last):.3f}")
                        )  # fmt: skip
                        rows.append(
                            (f"{label}: withdrawal → status shows it gone (s), median/max",
                             f"{statistics.median(status):.3f}/{max(status):.3f}")
                        )  # fmt: skip
                client.close()
        finally:
            for b in backends:
                b.stop()
    width = max(len(r[0]) for r in rows)
    print("\nbalancer: nginx and HAProxy from etcd endpoints (loopback, python backends;")
    print(f"{CLIENTS} client processes, one keep-alive connection each, {LOAD_SECONDS}s per row)")
    print(f"{'measure':<{width}} {'value':>12}")
    for label, value in rows:
        print(f"{label:<{width}} {value:>12}")


def _hostport(listen: Listen) -> tuple[str, int]:
    return listen.host, listen.port


if __name__ == "__main__":
    main()
