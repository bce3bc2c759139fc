"""The demo without machines (what it runs without root or podman, or with --no-machines):
the installer, the panel and one local agent come up, say that they keep nothing, and
go on SIGTERM; a port already in use is named before anything starts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import requests
from click.testing import CliRunner

from container.cli import main as vulcano
from tests.conftest import require
from vulcano import pki
from vulcano.lab.poll import wait_for
from vulcano.lab.ports import reserve_port

ROOT = Path(__file__).resolve().parents[2]
UP_TIMEOUT = 240.0


def _ports() -> list[str]:
    ports = [reserve_port() for _ in range(4)]
    flags = ["--port", "--panel-port", "--service-port", "--mail-port"]
    return [w for flag, port in zip(flags, ports, strict=True) for w in (flag, str(port))]


def _json_line(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    found: list[str] = []
    stdout = proc.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: found.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert found and found[0].strip(), f"no JSON from the demo (exit {proc.poll()})"
    return dict(json.loads(found[0]))


def test_the_reduced_demo_runs_installer_panel_and_one_agent(tmp_path: Path) -> None:
    require(subprocess.run(["which", "etcd"], capture_output=True).returncode == 0, "etcd")
    before = {p.name for p in Path("/tmp").glob("vulcano-demo-*")}
    err = tmp_path / "demo.err"
    with open(err, "w") as progress:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vulcano.lab.demo", "--headless", "--no-machines", *_ports()],
            stdout=subprocess.PIPE, stderr=progress, text=True, cwd=ROOT,
            start_new_session=True,
        )  # fmt: skip
    try:
        shown = _json_line(proc, UP_TIMEOUT)
        assert shown["mode"] == "reduced" and shown["service"] is None
        assert "no machines" in err.read_text()
        # the installer, saying it keeps installs in memory only
        page = requests.get(shown["installer"] + "/", timeout=10)
        assert page.ok and 'id="ephemeral"' in page.text
        assert requests.get(shown["status_page"], timeout=10).ok
        # the panel over HTTPS, verified against the certificate it made and the demo shows
        assert shown["panel"].startswith("https://")
        cert = Path(shown["panel_certificate"]).read_bytes()
        assert pki.fingerprint(cert) == shown["panel_fingerprint"]
        verify = shown["panel_certificate"]
        assert requests.get(shown["panel"] + "/healthz", timeout=10, verify=verify).ok
        assert len(shown["panel_password"]) >= 16
        # one local agent, running the demo's unit
        [endpoint] = shown["etcd"]

        def hello_running() -> str:
            listed = CliRunner().invoke(
                vulcano, ["--endpoint", endpoint, "list-units", "--no-legend"]
            )
            return (
                listed.output
                if "hello.service" in listed.output and "running" in listed.output
                else ""
            )

        wait_for(hello_running, 60, "hello.service running on the local agent", 0.5)
        machines = CliRunner().invoke(
            vulcano, ["--endpoint", endpoint, "list-machines", "--no-legend"]
        )
        assert len(machines.output.splitlines()) == 1, machines.output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(120)
        if proc.stdout is not None:
            proc.stdout.close()
    assert code == 0, err.read_text()[-3000:]
    assert "stopped; nothing is left running" in err.read_text()
    assert {p.name for p in Path("/tmp").glob("vulcano-demo-*")} <= before
    try:
        os.killpg(proc.pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive, "a process of the demo's group outlived it"


def test_a_port_in_use_is_named_with_its_option_before_anything_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "vulcano.lab.demo", "--no-machines", "--mail-port", str(port)],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
        )  # fmt: skip
    assert done.returncode == 2
    assert f"port {port} on 127.0.0.1 (the mail sink's page) is in use" in done.stderr
    assert "--mail-port" in done.stderr
    assert "starting" not in done.stdout + done.stderr  # nothing was started


def test_bad_options_are_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vulcano.lab.demo", "--machines", "0"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "--machines must be from 1 to" in done.stderr
