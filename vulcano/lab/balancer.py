"""A real balancer for tests and benchmarks: `agent.balancer.Balancer` in a thread, with
its own nginx or HAProxy, real etcd endpoints, and a client loop counting answers."""

from __future__ import annotations

import collections
import contextlib
import http.client
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.balancer.backends import Listen
from agent.balancer.component import Balancer
from agent.balancer.servers import server_for
from vulcano import etcd as vulcano_etcd
from vulcano.endpoints import Endpoint, PortSpec
from vulcano.keyspace import Keyspace
from vulcano.lab.httpbackend import HttpBackend, get
from vulcano.lab.poll import wait_for

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def put_endpoint(client: Any, ks: Keyspace, unit: str, machine: str, backend: HttpBackend) -> None:
    """Publish ``backend`` as ``unit`` on ``machine``, as the agent does."""
    endpoint = Endpoint(unit, machine, backend.address, (PortSpec(backend.port),), time.time())
    client.put(ks.endpoint(unit, machine), endpoint.to_json())


@contextlib.contextmanager
def running_balancer(
    etcd_endpoint: str,
    kind: str,
    state_dir: Path,
    listen: Listen,
    selector: str = "web@",
    **options: Any,
) -> Iterator[Balancer]:
    """A Balancer for ``selector`` serving until the block ends; then it and its server stop."""
    client = vulcano_etcd.connect(etcd_endpoint)
    state_dir.mkdir(parents=True, exist_ok=True)
    options.setdefault("machine_id", "lb-machine")
    balancer = Balancer(
        client, Keyspace(), server_for(kind, state_dir), selector=selector, listen=listen, **options
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            balancer.run()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"balancer-{kind}", daemon=True)
    thread.start()
    try:
        wait_for(
            lambda: failure or (balancer.live_text is not None and balancer.server.alive()),
            START_TIMEOUT,
            f"{kind} balancer serving",
        )
        if failure:
            raise failure[0]
        yield balancer
    finally:
        balancer.stop()
        thread.join(STOP_TIMEOUT)
        client.close()
        if thread.is_alive():
            raise RuntimeError("the balancer did not stop")


def serving(balancer: Balancer, backends: list[HttpBackend]) -> bool:
    """The status says exactly ``backends`` are live."""
    return balancer.status.status == "ok" and balancer.status.backends == sorted(
        b.name for b in backends
    )


@dataclass
class ClientLoop:
    """Requests through the balancer, one new connection each, from a thread of its own."""

    host: str
    port: int
    answers: list[tuple[float, str]] = field(default_factory=list)  # (monotonic, body)
    failures: list[tuple[float, str]] = field(default_factory=list)  # (monotonic, why)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> ClientLoop:
        self._thread = threading.Thread(target=self._run, name="client-loop", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)

    def _run(self) -> None:
        while not self._stop.is_set():
            at = time.monotonic()
            try:
                status, body = get(self.host, self.port)
            except (OSError, http.client.HTTPException) as exc:  # a torn answer fails too
                self.failures.append((at, repr(exc)))
                continue
            if status == 200:
                self.answers.append((at, body))
            else:
                self.failures.append((at, f"HTTP {status}"))

    def failures_since(self, moment: float) -> list[tuple[float, str]]:
        return [f for f in self.failures if f[0] >= moment]

    def answered_by_since(self, moment: float) -> collections.Counter[str]:
        return collections.Counter(body for at, body in self.answers if at >= moment)

    def wait_answers(self, count: int, timeout: float = 30.0) -> None:
        start = len(self.answers)
        wait_for(lambda: len(self.answers) >= start + count, timeout, f"{count} answers")
