"""The panel served for real: `vulcano serve` (gunicorn) in a child process.

Plain HTTP on loopback unless ``https``: then over the certificate the panel made in
its state directory, which the helpers' requests verify against (no verify=False).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from vulcano.lab.poll import wait_for
from vulcano.lab.ports import reserve_port

ROOT = Path(__file__).resolve().parents[3]
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class ServedPanel:
    url: str
    log_path: Path
    # what requests verify the panel's certificate with: its own certificate, or True
    verify: str | bool = True

    def log(self) -> str:
        return self.log_path.read_text()


@contextmanager
def served_panel(
    state_dir: Path,
    log_path: Path,
    env: dict[str, str] | None = None,
    https: bool = False,
    args: tuple[str, ...] = (),
    port: int | None = None,
    cert: Path | None = None,
) -> Iterator[ServedPanel]:
    """`python -m container serve` on a loopback port (``port``, else a free one) until
    the block ends (then SIGTERM). With ``https`` the panel is verified against ``cert``
    (a ``--tls-cert`` in ``args``), else against the one it made."""
    port = port or reserve_port()
    transport = () if https else ("--plain-http",)
    full_env = {
        **{k: v for k, v in os.environ.items() if k != "VULCANO_ADMIN_PASSWORD"},
        "PYTHONPATH": str(ROOT),
        "VULCANO_CLUSTER_NAME": "prod",
        "VULCANO_CLUSTER_SIZE": "3",
        "VULCANO_STATE_DIR": str(state_dir),
        "VULCANO_PANEL_PORT": str(port),
        **(env or {}),
    }
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "container",
                "serve",
                "--address",
                "127.0.0.1",
                *transport,
                *args,
            ],
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"{'https' if https else 'http'}://127.0.0.1:{port}"
    cert = cert or state_dir / "panel-tls.pem"
    try:

        def up() -> bool:
            verify: str | bool = str(cert) if https else True
            if https and not cert.exists():
                return False
            return requests.get(url + "/healthz", timeout=2, verify=verify).ok

        wait_for(up, 30, f"panel on {url}", 0.1)
        yield ServedPanel(url, log_path, str(cert) if https else True)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def login(url: str, password: str, verify: str | bool = True) -> requests.Session:
    """A requests session logged in to the panel at ``url`` (raises if the login fails)."""
    http = requests.Session()
    http.verify = verify
    # else REQUESTS_CA_BUNDLE, when set, wins over a session's verify (requests #3829)
    http.trust_env = verify is True
    page = http.get(url + "/login", timeout=10)
    token = _TOKEN.search(page.text)
    assert token is not None
    answer = http.post(
        url + "/login",
        data={"csrf_token": token.group(1), "password": password},
        # as a browser sends it: over HTTPS Flask-WTF refuses a form POST without it
        headers={"Referer": url + "/login"},
        timeout=10,
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text
    return http
