"""The panel's certificate keeper: `vulcano serve`'s child process while it serves HTTPS.

A process of its own, as the relay is (`container.cli.relay`), not a thread in
gunicorn's arbiter: the arbiter forks workers, and a renewal holding a lock (OpenSSL's,
logging's) at that moment would leave it held in the worker. The command is hidden:
only `vulcano serve` starts it (`keeper_beside`), with what it decided at its start.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import click

from container import policy
from container.panel import tls
from container.panel.renewal import CertificateKeeper

log = logging.getLogger(__name__)
INTERVAL_VAR = "VULCANO_PANEL_CERT_CHECK_INTERVAL"
_PATH = click.Path(path_type=Path)


@click.command("panel-keeper", hidden=True)
@click.option("--state-dir", type=_PATH, required=True)
@click.option("--panel-url", required=True, help="The URL the fingerprint line names.")
@click.option("--endpoint-url", help="Where nodes enrol (its pin is recorded again on a new key).")
@click.option("--name", "names", multiple=True, help="A name the made certificate is for.")
@click.option("--tls-cert", type=_PATH, help="The user's certificate: read, never written.")
@click.option("--tls-key", type=_PATH, help="The user's key.")
@click.option("--interval", envvar=INTERVAL_VAR, type=click.FloatRange(1.0, 86400.0),
              default=policy.PANEL_CERT_CHECK_INTERVAL, show_default=True,
              help=f"Seconds between checks [env {INTERVAL_VAR}].")  # fmt: skip
def keeper_command(
    state_dir: Path,
    panel_url: str,
    endpoint_url: str | None,
    names: tuple[str, ...],
    tls_cert: Path | None,
    tls_key: Path | None,
    interval: float,
) -> None:
    """Check the panel's certificate every interval until stopped or `vulcano serve` ends."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    own = (tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None
    keeper = CertificateKeeper(state_dir, list(names), panel_url, endpoint_url, own)
    keeper.start()
    stopped = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    parent = os.getppid()
    kind = "the one given with --tls-cert" if own else "the panel's own"
    log.info("panel certificate (%s) checked every %.0f s", kind, interval)
    due = time.monotonic() + interval
    # a second's tick: a serve killed outright (no SIGTERM to pass on) leaves no keeper
    while not stopped.wait(min(1.0, max(0.0, due - time.monotonic()))):
        if os.getppid() != parent:
            return
        if time.monotonic() >= due:
            keeper.check()
            due = time.monotonic() + interval


@contextmanager
def keeper_beside(
    cert: tls.PanelCertificate,
    state_dir: Path,
    names: list[str],
    panel_url: str,
    endpoint_url: str | None,
) -> Iterator[subprocess.Popen[bytes]]:
    """`vulcano panel-keeper` as a child process while the block runs."""
    argv = [sys.executable, "-m", "container", "panel-keeper", "--state-dir", str(state_dir)]
    argv += ["--panel-url", panel_url]
    if endpoint_url is not None:
        argv += ["--endpoint-url", endpoint_url]
    if cert.own:
        argv += ["--tls-cert", str(cert.cert_path), "--tls-key", str(cert.key_path)]
    for name in names:
        argv.append(f"--name={name}")
    child = subprocess.Popen(argv)
    try:
        yield child
    finally:
        child.terminate()
        try:
            child.wait(policy.KEEPER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


commands: list[click.Command] = [keeper_command]
