"""One probe of each kind against real things on loopback: an HTTP server, a closed port,
a listener that never answers, and commands (one that overstays its timeout is killed)."""

from __future__ import annotations

import http.server
import secrets
import socket
import threading
from collections.abc import Iterator

import pytest

from agent.services.probes import probe
from vulcano.endpoints import parse_check
from vulcano.lab.cluster import pids_of
from vulcano.lab.poll import wait_for


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = {"/ok": 200, "/moved": 302, "/broken": 500}.get(self.path, 404)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def silent() -> Iterator[int]:
    """A port that takes connections (the kernel's backlog) and never says a word."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        yield s.getsockname()[1]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("path", "ok", "says"),
    [("/ok", True, "200"), ("/moved", True, "302"), ("/broken", False, "500")],
)
def test_http_passes_on_2xx_and_3xx_only(web: int, path: str, ok: bool, says: str) -> None:
    result = probe(parse_check(f"http :{web}{path} timeout=1s"), "127.0.0.1")
    assert result.ok is ok
    assert f"http://127.0.0.1:{web}{path}: {says}" in result.output


def test_http_to_a_silent_server_times_out(silent: int) -> None:
    result = probe(parse_check(f"http :{silent}/ timeout=300ms"), "127.0.0.1")
    assert not result.ok and "timed out after 0.3s" in result.output


def test_tcp_passes_on_connect_and_fails_on_a_closed_port(silent: int) -> None:
    assert probe(parse_check(f"tcp :{silent}"), "127.0.0.1").ok
    port = _closed_port()
    result = probe(parse_check(f"tcp 127.0.0.1:{port}"), "10.255.255.1")  # its own host wins
    assert not result.ok and f"127.0.0.1:{port}" in result.output


def test_exec_passes_on_exit_zero_and_says_what_it_printed() -> None:
    assert probe(parse_check("exec -- /bin/true"), "127.0.0.1").ok
    result = probe(parse_check("exec -- /bin/sh -c 'echo not ready; exit 3'"), "127.0.0.1")
    assert not result.ok and result.output == "/bin/sh exited 3: not ready"


def test_exec_that_overstays_is_killed_with_its_children() -> None:
    marker = "vu" + secrets.token_hex(4)
    script = f"(exec -a {marker}-child sleep 30) & exec -a {marker}-main sleep 31"
    line = f"exec timeout=300ms interval=1s -- /bin/bash -c '{script}'"
    result = probe(parse_check(line), "127.0.0.1")
    assert not result.ok and "killed after 0.3s" in result.output
    wait_for(lambda: pids_of(marker) == [], 5, "the check's processes gone")


def test_a_probe_that_cannot_even_start_fails_instead_of_raising() -> None:
    result = probe(parse_check("exec -- /nonexistent/check"), "127.0.0.1")
    assert not result.ok and "/nonexistent/check" in result.output
