"""The serve command: the admin panel under gunicorn (the image's default command)."""

from __future__ import annotations

import logging
import os

import click

from container.cli.relay import relay_beside
from container.panel import create_app
from container.panel.server import ServerOptions, serve
from container.services.errors import SettingsError, StateDirError
from container.services.provisioning import (
    CLUSTER_NAME_VAR,
    CLUSTER_SIZE_VAR,
    DEFAULT_STATE_DIR,
    STATE_DIR_VAR,
    ProvisioningSettings,
    prepare_state_dir,
)

DEFAULT_PORT = 8080


@click.command("serve")
@click.option(
    "--cluster-name",
    envvar=CLUSTER_NAME_VAR,
    required=True,
    help=f"The cluster this provisioning machine is for [env {CLUSTER_NAME_VAR}].",
)
@click.option(
    "--cluster-size",
    envvar=CLUSTER_SIZE_VAR,
    required=True,
    help=f"How many machines the cluster starts with [env {CLUSTER_SIZE_VAR}].",
)
@click.option(
    "--state-dir",
    envvar=STATE_DIR_VAR,
    default=str(DEFAULT_STATE_DIR),
    show_default=True,
    help=f"Where the container keeps its state [env {STATE_DIR_VAR}].",
)
@click.option(
    "--address",
    envvar="VULCANO_PANEL_ADDRESS",
    default="0.0.0.0",
    show_default=True,
    help="Address the panel listens on [env VULCANO_PANEL_ADDRESS].",
)
@click.option(
    "--port",
    envvar="VULCANO_PANEL_PORT",
    type=click.IntRange(1, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port the panel listens on [env VULCANO_PANEL_PORT].",
)
@click.option("--workers", type=click.IntRange(1, 16), default=1, show_default=True)
@click.option("--threads", type=click.IntRange(1, 64), default=4, show_default=True)
def serve_command(
    cluster_name: str,
    cluster_size: str,
    state_dir: str,
    address: str,
    port: int,
    workers: int,
    threads: int,
) -> None:
    """Serve the admin panel (and its /healthz) with gunicorn until stopped.

    The admin's password is VULCANO_ADMIN_PASSWORD when set (it replaces the stored
    one); else the one stored in the state directory; on the first start without one, a
    password is generated and printed once to stderr.
    """
    flags = ("--cluster-name", "--cluster-size", "--state-dir")
    try:
        settings = ProvisioningSettings.checked(cluster_name, cluster_size, state_dir, names=flags)
    except SettingsError as exc:
        raise click.BadParameter(exc.message, param_hint=exc.setting) from None
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        prepare_state_dir(settings.state_dir)
    except StateDirError as exc:
        raise click.ClickException(str(exc)) from None
    app = create_app(settings=settings)
    # the heartbeat relay, when the provisioning user-data gave a reporting token
    with relay_beside(dict(os.environ)):
        serve(app, ServerOptions(address, port, workers, threads))


commands: list[click.Command] = [serve_command]
