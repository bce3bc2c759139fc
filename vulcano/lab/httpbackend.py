"""Real HTTP backends for balancer tests and benchmarks: each its own process on a loopback
address, answering every GET with its own ``address:port``.

Run one with ``python -m vulcano.lab.httpbackend ADDRESS PORT``; `HttpBackend` starts
it, waits until it answers and stops exactly the process it started.
"""

from __future__ import annotations

import http.client
import subprocess
import sys
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from vulcano.lab.poll import wait_for
from vulcano.lab.services import stop_process

# One request of a test client, and how long a backend may take to start answering.
REQUEST_TIMEOUT = 5.0
START_TIMEOUT = 15.0


def get(host: str, port: int, path: str = "/", timeout: float = REQUEST_TIMEOUT) -> tuple[int, str]:
    """One GET on a new connection: (status, body)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


@dataclass
class HttpBackend:
    address: str
    port: int
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"{self.address}:{self.port}"

    def start(self) -> HttpBackend:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vulcano.lab.httpbackend", self.address, str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(lambda: get(self.address, self.port)[1] == self.name, START_TIMEOUT, self.name)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.server.answer  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def main() -> None:
    address, port = sys.argv[1], int(sys.argv[2])
    server = ThreadingHTTPServer((address, port), _Handler)
    server.daemon_threads = True
    server.answer = f"{address}:{port}".encode()  # type: ignore[attr-defined]
    server.serve_forever()


if __name__ == "__main__":
    main()
