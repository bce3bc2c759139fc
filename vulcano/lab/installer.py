"""The hosted installer served for real (gunicorn on loopback), for tests, bench and demo."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests

from vulcano.lab.poll import wait_for
from vulcano.lab.ports import listener
from vulcano.lab.services import DatastoreEmulator, stop_process

if TYPE_CHECKING:
    from vulcano.lab.netns import Underlay

ROOT = Path(__file__).resolve().parents[2]
# The installer's port on a test underlay (a namespace of its own: any port is free).
UNDERLAY_PORT = 8080


@dataclass
class InstallerServer:
    url: str  # on loopback, for the test process
    log_path: Path | None
    proc: subprocess.Popen[bytes]
    # What `requests` should verify the server's certificate with (its PEM, over TLS).
    verify: str | bool = True
    underlay_url: str | None = None  # on the underlay, for test hosts and machines

    def new_discovery_url(self, size: int) -> str:
        """``GET /new?size=N``, asked as the underlay's hosts ask it (the answer names the
        host that was asked, so it points at ``underlay_url`` when there is one)."""
        headers = {"Host": urlsplit(self.underlay_url).netloc} if self.underlay_url else {}
        answer = requests.get(f"{self.url}/new", params={"size": size}, headers=headers, timeout=10)
        answer.raise_for_status()
        return answer.text.strip()

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
    underlay: Underlay | None = None,
) -> Iterator[InstallerServer]:
    """gunicorn serving ``appengine:create_app()`` on 127.0.0.1, with its access log on.

    The log goes to ``log_path``, or to this process's terminal when it is None. With
    ``tls`` (certificate, key) gunicorn serves HTTPS with that self-signed certificate.
    With an ``underlay`` it also listens on that underlay's gateway address
    (``underlay_url``), where test machines reach it: gunicorn itself stays in the root
    namespace, beside the Datastore emulator on loopback, and is handed a socket made
    inside the underlay's.
    """
    tls_args = ["--certfile", str(tls[0]), "--keyfile", str(tls[1])] if tls else []
    underlay_url = None
    handed: list[socket.socket] = []
    if underlay is not None:
        with underlay.entered():
            handed.append(socket.create_server((underlay.gateway, UNDERLAY_PORT), backlog=128))
        underlay_url = f"http://{underlay.gateway}:{UNDERLAY_PORT}"
    # The loopback socket is bound here and handed over (fd://), so no other process can
    # take the port between its choice and gunicorn's start.
    loopback = socket.create_server(("127.0.0.1", port), backlog=128) if port else listener()
    handed.append(loopback)
    port = loopback.getsockname()[1]
    binds = [flag for s in handed for flag in ("--bind", f"fd://{s.fileno()}")]
    for s in handed:
        s.set_inheritable(True)
    env = {
        **os.environ,
        **emulator.env(),
        "VULCANO_SECRET_KEY": secrets.token_urlsafe(32),
        "VULCANO_VALIDATE_WITH_TOOLS": validate,
        **(env_extra or {}),
    }
    if underlay is not None and "VULCANO_TRUSTED_HOSTS" not in env:
        # the hosts the installer answers for: loopback, and the underlay's gateway
        env["VULCANO_TRUSTED_HOSTS"] = f"127.0.0.1,localhost,[::1],{underlay.gateway}"
    with contextlib.ExitStack() as files:
        log = files.enter_context(open(log_path, "ab")) if log_path else None
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                *binds,
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
            pass_fds=tuple(s.fileno() for s in handed),
        )
    for s in handed:
        s.close()  # gunicorn has its own copies
    scheme = "https" if tls else "http"
    server = InstallerServer(
        url=f"{scheme}://127.0.0.1:{port}",
        log_path=log_path,
        proc=proc,
        verify=str(tls[0]) if tls else True,
        underlay_url=underlay_url,
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
