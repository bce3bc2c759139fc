"""`vulcano-agent balancer` as a process: it serves, exits cleanly on SIGTERM with its
server, and refuses what it cannot serve with a message naming why."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from vulcano import etcd as vulcano_etcd
from vulcano.keyspace import Keyspace
from vulcano.lab import services
from vulcano.lab.balancer import put_endpoint
from vulcano.lab.httpbackend import HttpBackend, get
from vulcano.lab.poll import wait_for
from vulcano.lab.ports import reserve_port
from vulcano.records import BalancerStatus

KS = Keyspace()
WAIT = 30.0


@pytest.fixture
def client(etcd: services.Etcd) -> Iterator[Any]:
    c = vulcano_etcd.connect(etcd.endpoint)
    yield c
    c.close()


def command(etcd: services.Etcd, state: Path, listen: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "agent", "balancer", "--for", "web@", "--listen", listen,
        "--state-dir", str(state), "--etcd-endpoints", etcd.endpoint,
        "--machine-id", "lb-proc", "--settle", "200ms", *extra,
    ]  # fmt: skip


def processes_using(path: Path) -> list[int]:
    """Processes whose command line names ``path`` (the server's config lives there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(path).encode() in cmdline and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purpose, but it is not ours to reap
    return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


@pytest.mark.parametrize("kind", ["nginx", "haproxy"])
def test_sigterm_stops_the_balancer_and_its_server(
    kind: str, etcd: services.Etcd, client: Any, tmp_path: Path
) -> None:
    require(shutil.which(kind) is not None, f"needs Debian's {kind}")
    backend = HttpBackend("127.0.0.21", reserve_port("127.0.0.21")).start()
    port = reserve_port()
    state = tmp_path / "lb"
    config = tmp_path / "agent.toml"  # the agent's own file, as a Global unit would pass it
    config.write_text(
        f'etcd-endpoints = "{etcd.endpoint}"\nmachine-id = "lb-proc"\n'
        'public-ip = "192.0.2.10"\nttl = 10\n'
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent",
            "balancer",
            "--config",
            str(config),
            "--for",
            "web@",
            "--listen",
            f"127.0.0.1:{port}",
            "--state-dir",
            str(state),
            "--kind",
            kind,
            "--settle",
            "200ms",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        put_endpoint(client, KS, "web@1.service", "m1", backend)
        key = KS.balancer("web@", "lb-proc")

        def record() -> BalancerStatus | None:
            value = client.get(key)[0]
            return BalancerStatus.from_json(value) if value else None

        status = wait_for(
            lambda: (r := record()) and r.backends == [backend.name] and r,
            WAIT,
            "the balancer serving one backend",
        )
        assert status.status == "ok" and status.kind == kind and status.server_pid > 0
        assert get("127.0.0.1", port) == (200, backend.name)
        server = [status.server_pid, *_children(status.server_pid)]
        assert len(server) >= 2  # a master and its worker
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
        assert [pid for pid in server if alive(pid)] == []
        assert processes_using(state) == []
        assert client.get(key)[0] is None  # the status record went with it
        assert b"serving 1 backend(s) for web@" in out  # its log is on stdout
    finally:
        if proc.poll() is None:
            services.stop_process(proc)
        backend.stop()


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "localhost:80"], "--listen wants [ADDRESS]:PORT"),
        (["--listen", ":80", "--for", "web;"], "--for wants a unit name"),
        (["--listen", ":80", "--port", "a b"], "--port wants a port name or a number"),
        (["--listen", ":80", "--settle", "soon"], "--settle"),
        (["--listen", ":80", "--kind", "traefik"], "--kind"),
        (["--listen", ":80", "--machine-id", "a b"], "--machine-id"),
        (["--listen", ":80", "--config", "/nonexistent/agent.toml"], "agent.toml"),
    ],
)
def test_bad_flags_are_usage_errors_naming_the_flag(
    args: list[str], message: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agent", "balancer", "--for", "web@", *args,
         "--etcd-endpoints", "http://127.0.0.1:1", "--state-dir", str(tmp_path / "lb")],
        capture_output=True, text=True, timeout=WAIT, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert not (tmp_path / "lb").exists()  # nothing made


def test_no_etcd_endpoint_anywhere_is_a_usage_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VULCANO_")}
    done = subprocess.run(
        [sys.executable, "-m", "agent", "balancer", "--for", "web@", "--listen", ":80",
         "--state-dir", str(tmp_path / "lb")],
        capture_output=True, text=True, timeout=WAIT, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 2
    assert "no etcd endpoints: give --etcd-endpoints" in done.stderr


def test_a_listen_address_not_on_this_host_is_refused_by_nginx_itself(
    etcd: services.Etcd, tmp_path: Path
) -> None:
    require(shutil.which("nginx") is not None, "needs Debian's nginx")
    state = tmp_path / "lb"
    done = subprocess.run(
        command(etcd, state, "192.0.2.1:8080"),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "nginx -t refused the configuration" in done.stderr
    assert "bind() to 192.0.2.1:8080 failed" in done.stderr
    assert not (state / "nginx.conf").exists()  # never made live
    assert processes_using(state) == []


def test_a_killed_balancer_takes_its_server_along(
    etcd: services.Etcd, client: Any, tmp_path: Path
) -> None:
    require(shutil.which("nginx") is not None, "needs Debian's nginx")
    state = tmp_path / "lb"
    proc = subprocess.Popen(
        command(etcd, state, f"127.0.0.1:{reserve_port()}"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        key = KS.balancer("web@", "lb-proc")
        wait_for(lambda: client.get(key)[0] is not None, WAIT, "the balancer's status")
        nginx = [p for p in processes_using(state) if p != proc.pid]
        assert nginx != []  # its nginx master and worker run
        proc.kill()  # no chance to stop its server
        proc.wait(WAIT)
        wait_for(lambda: not any(alive(p) for p in nginx), WAIT, "its nginx gone too")
        assert processes_using(state) == []
    finally:
        if proc.poll() is None:
            services.stop_process(proc)
