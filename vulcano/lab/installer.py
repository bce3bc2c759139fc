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
    # What `requests` should verify the server's certificate with (its PEM, over TLS).
    verify: str | bool = True

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
    tls: tuple[Path, Path] | None = None,
    env_extra: dict[str, str] | None = None,
) -> Iterator[InstallerServer]:
    """gunicorn serving ``appengine:create_app()`` on 127.0.0.1, with its access log on.

    The log goes to ``log_path``, or to this process's terminal when it is None. With
    ``tls`` (certificate, key) gunicorn serves HTTPS with that self-signed certificate.
    """
    port = port or reserve_port()
    tls_args = ["--certfile", str(tls[0]), "--keyfile", str(tls[1])] if tls else []
    env = {
        **os.environ,
        **emulator.env(),
        "VULCANO_SECRET_KEY": secrets.token_urlsafe(32),
        "VULCANO_VALIDATE_WITH_TOOLS": validate,
        **(env_extra or {}),
    }
    with contextlib.ExitStack() as files:
        log = files.enter_context(open(log_path, "ab")) if log_path else None
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
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
                *tls_args,
                "appengine:create_app()",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT if log else None,
            start_new_session=True,
        )
    scheme = "https" if tls else "http"
    server = InstallerServer(
        url=f"{scheme}://127.0.0.1:{port}",
        log_path=log_path,
        proc=proc,
        verify=str(tls[0]) if tls else True,
    )
    try:
        wait_for(
            lambda: (
                proc.poll() is None and requests.get(server.url, timeout=2, verify=server.verify).ok
            ),
            60,
            f"installer on {server.url} (log: {log_path})",
        )
        yield server
    finally:
        stop_process(proc)
