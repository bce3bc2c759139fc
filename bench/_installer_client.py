"""The installer bench's clients: sessions with the form's CSRF token, the create POST,
and threads that drive one operation and time each request."""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
import requests.adapters

from vulcano.lab.sshkeys import ed25519_line

_CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
TIMEOUT = 30.0
# The bench makes more installs from one address than the hourly quota lets a user.
UNBOUNDED = {
    "VULCANO_INSTALLS_PER_CLIENT_PER_HOUR": "1000000",
    "VULCANO_NEW_TOKENS_PER_CLIENT_PER_HOUR": "1000000",
}


@dataclass
class Row:
    operation: str
    requests: int
    seconds: float
    latencies: list[float]
    failed: int = 0  # answers that were not the expected one (with ``tolerate``)

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


class _FromAddress(requests.adapters.HTTPAdapter):
    """Connections from one local address (127.0.1.x): one client of many, to the quota."""

    def __init__(self, address: str) -> None:
        self._address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self._address, 0)
        super().init_poolmanager(*args, **kwargs)


def _session(url: str, source: str | None = None) -> tuple[requests.Session, str]:
    session = requests.Session()
    if source is not None:
        session.mount("http://", _FromAddress(source))
    page = session.get(url + "/", timeout=TIMEOUT)
    page.raise_for_status()
    match = _CSRF_RE.search(page.text)
    assert match, "no CSRF token on the form"
    return session, match.group(1)


def create_install(session: requests.Session, url: str, csrf: str, flavour: str, n: int) -> str:
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


def drive(
    url: str,
    name: str,
    total: int,
    clients: int,
    work: Callable[[requests.Session, str, int], None],
    spread: bool = False,
    tolerate: bool = False,
) -> Row:
    """Run ``work`` ``total`` times from ``clients`` threads, each with its own session
    (with ``spread``, each from an address of its own, 127.0.1.N). With ``tolerate`` a
    wrong answer (RuntimeError) is counted in ``failed`` and the client goes on."""
    url_sessions = [_session(url, f"127.0.1.{i + 1}" if spread else None) for i in range(clients)]
    latencies: list[float] = []
    errors: list[BaseException] = []
    failed = 0
    counter = iter(range(total))
    lock = threading.Lock()

    def client(i: int) -> None:
        nonlocal failed
        session, csrf = url_sessions[i]
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            started = time.perf_counter()
            try:
                work(session, csrf, n)
            except RuntimeError as exc:
                if not tolerate:
                    errors.append(exc)
                    return
                with lock:
                    failed += 1
                continue
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
    return Row(name, len(latencies), elapsed, latencies, failed)
