"""The serve command: the admin panel under gunicorn (the image's default command)."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import sys
from contextlib import ExitStack
from pathlib import Path

import click

from container.cli.keeper import keeper_beside
from container.cli.relay import relay_beside
from container.panel import create_app, tls
from container.panel.renewal import fingerprint_line
from container.panel.server import ServerOptions, serve
from container.services import enrolment
from container.services.errors import SettingsError, StateDirError
from container.services.jointokens import PANEL_URL_VAR
from container.services.provisioning import (
    CLUSTER_NAME_VAR,
    CLUSTER_SIZE_VAR,
    DEFAULT_STATE_DIR,
    STATE_DIR_VAR,
    ProvisioningSettings,
    prepare_state_dir,
)
from vulcano.heartbeat import HeartbeatError, PanelSummary, panel_from_dict

DEFAULT_PORT = 8080
PLAIN_HTTP_VAR = "VULCANO_PANEL_PLAIN_HTTP"


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
    "--listen",
    envvar="VULCANO_PANEL_ADDRESS",
    default="0.0.0.0",
    show_default=True,
    help="Address the panel listens on; 127.0.0.1 for SSH-tunnel access only "
    "[env VULCANO_PANEL_ADDRESS].",
)
@click.option(
    "--port",
    envvar="VULCANO_PANEL_PORT",
    type=click.IntRange(1, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port the panel listens on [env VULCANO_PANEL_PORT].",
)
@click.option(
    "--tls-cert",
    envvar=tls.TLS_CERT_VAR,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Serve this certificate (PEM, chain after it) instead of the one the panel "
    f"makes [env {tls.TLS_CERT_VAR}].",
)
@click.option(
    "--tls-key",
    envvar=tls.TLS_KEY_VAR,
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"The private key of --tls-cert (PEM, unencrypted) [env {tls.TLS_KEY_VAR}].",
)
@click.option(
    "--tls-name",
    "tls_names",
    envvar=tls.TLS_NAMES_VAR,
    multiple=True,
    help="A host name or address the made certificate is also for, e.g. the machine's "
    f"public IP (repeatable; the env var takes them space-separated) [env {tls.TLS_NAMES_VAR}].",
)
@click.option(
    "--plain-http",
    envvar=PLAIN_HTTP_VAR,
    is_flag=True,
    help="Serve plain HTTP: only on a loopback address (reach it through an SSH tunnel) "
    f"[env {PLAIN_HTTP_VAR}].",
)
@click.option(
    "--force-plain-http",
    is_flag=True,
    help="Serve plain HTTP on any address: the password then crosses the network in the clear.",
)
@click.option("--workers", type=click.IntRange(1, 16), default=1, show_default=True)
@click.option("--threads", type=click.IntRange(1, 64), default=4, show_default=True)
def serve_command(
    cluster_name: str,
    cluster_size: str,
    state_dir: str,
    address: str,
    port: int,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_names: tuple[str, ...],
    plain_http: bool,
    force_plain_http: bool,
    workers: int,
    threads: int,
) -> None:
    """Serve the admin panel (and its /healthz) with gunicorn until stopped.

    The admin's password is VULCANO_ADMIN_PASSWORD when set (it replaces the stored
    one); else the one stored in the state directory; on the first start without one, a
    password is generated and printed once to stderr.

    HTTPS by default, with the certificate given or one the panel makes on its first
    start (kept in the state directory, renewed for the same key near its end, also
    while it serves, with no restart); its SHA-256 fingerprint is printed on every start
    and every renewal and reported to the hosted installer, whose install page shows it.
    Plain HTTP (--plain-http) only on a loopback address unless forced.
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
    plain = plain_http or force_plain_http
    _check_transport(address, plain, force_plain_http, tls_cert, tls_key)
    try:
        names = tls.machine_names(tls.check_names(tls_names))
        if plain:
            cert = None
        elif tls_cert is not None and tls_key is not None:
            cert = tls.own_certificate(tls_cert, tls_key)
        else:
            cert = tls.ensure_certificate(settings.state_dir, names)
    except SettingsError as exc:
        raise click.BadParameter(exc.message, param_hint=exc.setting) from None
    fingerprint = cert.fingerprint if cert is not None else None
    endpoint = node_endpoint(address, port, cert, names)
    enrolment.record_panel(settings.state_dir, endpoint)
    app = create_app(settings=settings, tls_fingerprint=fingerprint)
    panel = PanelSummary(panel_url(address, port, cert is not None, names), fingerprint or "")
    try:
        reported: PanelSummary | None = panel_from_dict(dataclasses.asdict(panel))
    except HeartbeatError as exc:  # a VULCANO_PANEL_URL the installer would refuse
        logging.getLogger(__name__).warning("the panel is not reported to the installer: %s", exc)
        reported = None
    if cert is None:
        print(f"vulcano panel: plain HTTP on {panel.url}", file=sys.stderr, flush=True)
    else:
        print(fingerprint_line(panel.url, cert.fingerprint), file=sys.stderr, flush=True)
    options = ServerOptions(
        address,
        port,
        workers,
        threads,
        certfile=cert.cert_path if cert else None,
        keyfile=cert.key_path if cert else None,
    )
    with ExitStack() as beside:
        if cert is not None:  # renewed (its own) or watched (the user's) while it serves
            endpoint_url = endpoint.url if endpoint is not None else None
            beside.enter_context(
                keeper_beside(cert, settings.state_dir, names, panel.url, endpoint_url)
            )
        # the heartbeat relay, when the provisioning user-data gave a reporting token; it
        # reads the fingerprint from the certificate file for each beat
        certificate = cert.cert_path if cert is not None else None
        beside.enter_context(relay_beside(dict(os.environ), reported, certificate))
        serve(app, options)


def _check_transport(
    address: str, plain: bool, forced: bool, cert: Path | None, key: Path | None
) -> None:
    """Usage errors for flags that cannot go together, or plain HTTP on the network."""
    if (cert is None) != (key is None):
        given, missing = ("--tls-cert", "--tls-key") if key is None else ("--tls-key", "--tls-cert")
        raise click.BadParameter(f"needs {missing} too", param_hint=given)
    if plain and cert is not None:
        raise click.BadParameter(
            "a certificate is for HTTPS, not plain HTTP", param_hint="--tls-cert"
        )
    if plain and not forced and not tls.is_loopback(address):
        raise click.BadParameter(
            f"plain HTTP on {address} would send the admin password across the network in "
            "the clear: listen on 127.0.0.1 (and reach the panel through an SSH tunnel), "
            "serve HTTPS (the default), or add --force-plain-http",
            param_hint="--plain-http",
        )


def panel_url(address: str, port: int, https: bool, names: list[str]) -> str:
    """The panel's URL as the hosted page shows it: VULCANO_PANEL_URL, else made up.

    On a wildcard address that is the first of the machine's names that is not loopback.
    """
    given = os.environ.get(PANEL_URL_VAR, "").rstrip("/")
    if given:
        return given
    host = address
    if _wildcard(address):
        host = next((n for n in names if not tls.is_loopback(n)), "127.0.0.1")
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if https else 'http'}://{host}:{port}"


def node_endpoint(
    address: str, port: int, cert: tls.PanelCertificate | None, names: list[str]
) -> enrolment.PanelEndpoint | None:
    """Where the cluster's nodes reach this panel to enrol at boot, and its key's pin:
    VULCANO_PANEL_URL when it is https, else the listen address (on a wildcard, the
    machine's first address that is not loopback); None without HTTPS, or on loopback
    with no VULCANO_PANEL_URL (nodes cannot reach it there)."""
    given = os.environ.get(PANEL_URL_VAR, "").rstrip("/")
    if cert is None or (given and not given.startswith("https://")):
        return None
    if given:
        return enrolment.PanelEndpoint(given, cert.spki_pin)
    if tls.is_loopback(address):
        return None
    host = address
    if _wildcard(address):
        host = next((n for n in names if _is_ip(n) and not tls.is_loopback(n)), "")
    if not host or not _is_ip(host):
        return None
    if ":" in host:
        host = f"[{host}]"
    return enrolment.PanelEndpoint(f"https://{host}:{port}", cert.spki_pin)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _wildcard(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_unspecified
    except ValueError:
        return address == ""


commands: list[click.Command] = [serve_command]
