"""The relay command: this machine's cluster summarized and sent to the hosted installer.

`vulcano serve` runs it as a child process beside the panel when the provisioning
user-data gave a reporting token (``VULCANO_REPORT_TOKEN_FILE``): a process of its own,
not a thread in gunicorn's arbiter, which forks workers while such a thread could hold
a lock (SQLite's, logging's) the children would inherit held.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import click

from container import policy
from container.services.errors import SettingsError, StateDirError
from container.services.provisioning import (
    CLUSTER_NAME_VAR,
    DEFAULT_STATE_DIR,
    STATE_DIR_VAR,
    prepare_state_dir,
)
from container.services.relay import REPORT_TOKEN_FILE_VAR, relay_from_environment
from container.services.reporter import ClusterReporter
from container.store.db import open_store
from vulcano.heartbeat import HeartbeatError, PanelSummary, panel_from_dict

log = logging.getLogger(__name__)
INTERVAL_VAR = "VULCANO_RELAY_INTERVAL"


@click.command("relay")
@click.option("--cluster-name", envvar=CLUSTER_NAME_VAR, required=True,
              help=f"The cluster to report [env {CLUSTER_NAME_VAR}].")  # fmt: skip
@click.option("--state-dir", envvar=STATE_DIR_VAR, default=str(DEFAULT_STATE_DIR),
              show_default=True, help=f"The container's state [env {STATE_DIR_VAR}].")  # fmt: skip
@click.option("--interval", envvar=INTERVAL_VAR, type=click.FloatRange(1.0, 3600.0),
              default=policy.RELAY_INTERVAL, show_default=True,
              help=f"Seconds between heartbeats [env {INTERVAL_VAR}].")  # fmt: skip
@click.option("--panel-url", help="Where the admin panel answers, for the hosted page.")
@click.option("--panel-fingerprint",
              help="The panel's certificate SHA-256 fingerprint, for the hosted page.")  # fmt: skip
@click.option("--panel-certificate", type=click.Path(dir_okay=False, path_type=Path),
              help="The panel's certificate file: each heartbeat reports its fingerprint "
              "as it is then (a renewed one from the next beat on).")  # fmt: skip
def relay_command(
    cluster_name: str,
    state_dir: str,
    interval: float,
    panel_url: str | None,
    panel_fingerprint: str | None,
    panel_certificate: Path | None,
) -> None:
    """Send the cluster's heartbeat to the hosted installer every interval, until stopped."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    panel = _panel(panel_url, panel_fingerprint)
    if panel_certificate is not None and panel is None:
        raise click.BadParameter("needs --panel-url too", param_hint="--panel-certificate")
    try:
        store = open_store(prepare_state_dir(Path(state_dir)))
        reporter = ClusterReporter(
            store, cluster_name, interval, panel=panel, panel_certificate=panel_certificate
        )
        relay = relay_from_environment(store, reporter, os.environ, interval)
    except (SettingsError, StateDirError) as exc:
        raise click.ClickException(str(exc)) from None
    if relay is None:
        raise click.ClickException(f"{REPORT_TOKEN_FILE_VAR} is not set: nothing to report to")
    stopped = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("relay: cluster %s every %.0f s", cluster_name, interval)
    with relay:
        while not stopped.wait(1.0):
            pass


def _panel(url: str | None, fingerprint: str | None) -> PanelSummary | None:
    """The panel as every heartbeat describes it; a usage error naming a bad part."""
    if url is None:
        if fingerprint is not None:
            raise click.BadParameter("needs --panel-url too", param_hint="--panel-fingerprint")
        return None
    try:
        return panel_from_dict({"url": url, "fingerprint": fingerprint or ""})
    except HeartbeatError as exc:
        hint = f"--{exc.field.replace('.', '-')}"
        raise click.BadParameter(exc.message, param_hint=hint) from None


@contextmanager
def relay_beside(
    environ: dict[str, str],
    panel: PanelSummary | None = None,
    certificate: Path | None = None,
) -> Iterator[subprocess.Popen[bytes] | None]:
    """`vulcano relay` as a child process while the block runs (None: no reporting token).

    With ``panel`` every heartbeat also says where the panel answers, and its fingerprint:
    that of ``certificate`` as the file is at each beat, when given.
    """
    if not environ.get(REPORT_TOKEN_FILE_VAR):
        yield None
        return
    argv = [sys.executable, "-m", "container", "relay"]
    if panel is not None:
        argv += ["--panel-url", panel.url]
        if panel.fingerprint:
            argv += ["--panel-fingerprint", panel.fingerprint]
        if certificate is not None and panel.fingerprint:
            argv += ["--panel-certificate", str(certificate)]
    child = subprocess.Popen(argv, env=environ)
    try:
        yield child
    finally:
        child.terminate()
        try:
            child.wait(policy.RELAY_STOP_TIMEOUT + 3)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


commands: list[click.Command] = [relay_command]
