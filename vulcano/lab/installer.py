"""The hosted installer served for real (gunicorn on loopback), for tests, bench and demo."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from vulcano.lab.poll import wait_for
from vulcano.lab.ports import reserve_port
from vulcano.lab.services import DatastoreEmulator, stop_process

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class InstallerServer:
    url: str
    log_path: Path | None
    proc: subprocess.Popen[bytes]

    def log(self) -> str:
        assert self.log_path is not None, "this server logs to the terminal"
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def installer_server(
    emulator: DatastoreEmulator,
    log_path: Path | None,
    *,
    port: int | None = None,
    workers: int = 1,
    threads: int = 1,
    validate: str = "required",
    host: str = "127.0.0.1",
) -> Iterator[InstallerServer]:
    """gunicorn serving ``appengine:create_app()`` on 127.0.0.1, with its access log on.

    The log goes to ``log_path``, or to this process's terminal when it is None. ``host``
    is another address to bind instead: a test's own (an underlay bridge's), never more.
    """
    port = port or reserve_port()
    env = {
        **os.environ,
        **emulator.env(),
        "VULCANO_SECRET_KEY": secrets.token_urlsafe(32),
        "VULCANO_VALIDATE_WITH_TOOLS": validate,
    }
    with contextlib.ExitStack() as files:
        log = files.enter_context(open(log_path, "ab")) if log_path else None
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"{host}:{port}",
                "--workers",
                str(workers),
                "--threads",
                str(threads),
                "--access-logfile",
                "-",
                "--error-logfile",
                "-",
                # gunicorn 23+ opens a control socket at one fixed path per user: with
                # several servers on one machine they would fight over it.
                "--no-control-socket",
                "appengine:create_app()",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT if log else None,
            start_new_session=True,
        )
    server = InstallerServer(url=f"http://{host}:{port}", log_path=log_path, proc=proc)
    try:
        wait_for(
            lambda: proc.poll() is None and requests.get(server.url, timeout=2).ok,
            60,
            f"installer on {server.url} (log: {log_path})",
        )
        yield server
    finally:
        stop_process(proc)
