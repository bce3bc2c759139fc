"""`vulcano-agent balancer`: the command that runs one balancer in the foreground."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from pathlib import Path

import click

from agent import policy
from agent.balancer.backends import (
    ListenError,
    check_port_selector,
    check_selector,
    parse_listen,
)
from agent.balancer.component import Balancer
from agent.balancer.servers import KINDS, ServerFailed, server_for
from agent.config import (
    DEFAULT_STATE_DIR,
    ENV_PREFIX,
    ConfigError,
    read_config_file,
    read_environment,
    validate_machine_id,
)
from agent.credentials import TLSReload
from agent.membership.identity import machine_id as host_machine_id
from agent.signals import stop_on_signals
from agent.statedir import StateDirBusy, StateLock
from agent.tlsflags import tls_options
from vulcano import etcd as vulcano_etcd
from vulcano import etcdhttp
from vulcano.clierrors import reported
from vulcano.endpoints import parse_duration
from vulcano.errors import UnitFileError, VulcanoError
from vulcano.keyspace import DEFAULT_PREFIX, Keyspace

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}")
MAX_SETTLE = 60.0


def _agent_settings(flags: dict[str, str | None], config_file: Path | None) -> dict[str, str]:
    """What the balancer takes of the agent's settings: file, then environment, then flags."""
    if config_file is None and os.environ.get(ENV_PREFIX + "CONFIG"):
        config_file = Path(os.environ[ENV_PREFIX + "CONFIG"])
    merged: dict[str, object] = {}
    if config_file is not None:
        merged.update(read_config_file(config_file))
    merged.update(read_environment(os.environ))
    merged.update({k: v for k, v in flags.items() if v is not None})
    out = {}
    for name in ("etcd_endpoints", "prefix", "machine_id", "state_dir", "cacert", "cert", "key"):
        value = merged.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value.isprintable():
            raise ConfigError(f"{name.replace('_', '-')}: {value!r} is not a one-line string")
        out[name] = value
    return out


def _seconds(value: str, flag: str) -> float:
    try:
        seconds = parse_duration(value, flag)
    except UnitFileError as exc:
        raise click.BadParameter(str(exc), param_hint=flag) from None
    if not 0 <= seconds <= MAX_SETTLE:
        raise click.BadParameter(f"must be from 0 to {MAX_SETTLE:.0f}s", param_hint=flag)
    return seconds


@click.command("balancer")
@click.option("--for", "selector", required=True, help="Units to balance: web@ or one unit.")
@click.option("--listen", required=True, help="Where to listen: :80, 127.0.0.1:8080, [::1]:80.")
@click.option("--kind", type=click.Choice(KINDS), default="nginx", show_default=True)
@click.option("--port", help="Which declared port of the endpoints: a name or a number.")
@click.option("--name", help="The balancer's name in balancers/<name>/ (default: --for).")
@click.option("--state-dir", help="Where its config files live (default under the agent's).")
@click.option("--allow-empty", is_flag=True, help="Apply an empty backend set (503) too.")
@click.option("--settle", default="1s", show_default=True, help="Additions wait this long.")
@click.option(
    "--settle-max",
    default=f"{policy.BALANCER_SETTLE_MAX:.0f}s",
    show_default=True,
    help="... and never longer than this after the first.",
)
@click.option(
    "--etcd-endpoints",
    "--endpoint",
    "etcd_endpoints",
    help="Comma-separated etcd client URLs (also VULCANO_ETCD_ENDPOINTS, VULCANO_ENDPOINT).",
)
@click.option("--prefix", help=f"Cluster keyspace prefix (default {DEFAULT_PREFIX}).")
@click.option("--machine-id", help="This machine's id (default: the agent's).")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    help="The agent's TOML config file (also VULCANO_CONFIG): etcd, prefix, machine id.",
)
@tls_options
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def balancer(
    selector: str,
    listen: str,
    kind: str,
    port: str | None,
    name: str | None,
    state_dir: str | None,
    allow_empty: bool,
    settle: str,
    settle_max: str,
    etcd_endpoints: str | None,
    prefix: str | None,
    machine_id: str | None,
    config_file: Path | None,
    cacert: str | None,
    cert: str | None,
    key: str | None,
    verbose: bool,
) -> None:
    """Run nginx or HAProxy for the healthy endpoints of --for, until SIGTERM.

    It starts and owns its own server (config in --state-dir); every change of the
    endpoints is rendered, checked with the server's own check, swapped in atomically
    and reloaded gracefully (HAProxy: through its runtime API when it can). A change
    that fails keeps the last good configuration and says so in the log and in
    balancers/<name>/<machine>.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    settle_s = _seconds(settle, "--settle")
    settle_max_s = _seconds(settle_max, "--settle-max")
    if settle_max_s < settle_s:
        raise click.BadParameter("must be at least --settle", param_hint="--settle-max")
    try:
        check_selector(selector)
        where = parse_listen(listen)
        port_selector = check_port_selector(port)
    except ListenError as exc:
        raise click.UsageError(str(exc)) from None
    label = name or selector
    if not _NAME_RE.fullmatch(label):
        raise click.UsageError(f"--name {label!r}: letters, digits and '_.@:-' only")
    try:
        settings = _agent_settings(
            {
                "etcd_endpoints": etcd_endpoints,
                "prefix": prefix,
                "machine_id": machine_id,
                "cacert": cacert,
                "cert": cert,
                "key": key,
            },
            config_file,
        )
        etcd_endpoints = settings.get("etcd_endpoints")
        if not etcd_endpoints:
            raise ConfigError(
                "no etcd endpoints: give --etcd-endpoints, VULCANO_ETCD_ENDPOINTS or --config"
            )
        vulcano_etcd.parse_endpoints(etcd_endpoints)
        tls = vulcano_etcd.tls_files(
            etcd_endpoints, settings.get("cacert"), settings.get("cert"), settings.get("key")
        )
        keyspace = Keyspace(settings.get("prefix") or DEFAULT_PREFIX)
        agent_state = Path(settings.get("state_dir") or DEFAULT_STATE_DIR)
        machine = validate_machine_id(
            settings.get("machine_id") or host_machine_id(agent_state), "--machine-id"
        )
    except (ValueError, VulcanoError) as exc:
        raise click.UsageError(str(exc)) from None
    directory = Path(state_dir) if state_dir else agent_state / "balancers" / label
    # others may traverse (nginx workers run as nobody and use its temp dirs), not list
    directory.mkdir(parents=True, exist_ok=True, mode=0o711)
    lock = StateLock(directory)
    with reported():
        try:
            lock.acquire()
        except StateDirBusy as exc:
            raise click.ClickException(str(exc)) from None
    client = etcdhttp.connect(etcd_endpoints, tls=tls)
    component = Balancer(
        client,
        keyspace,
        server_for(kind, directory),
        selector=selector,
        listen=where,
        machine_id=machine,
        name=label,
        port=port_selector,
        allow_empty=allow_empty,
        settle=settle_s,
        settle_max=settle_max_s,
    )
    if tls is not None:
        # the agent renews the files in place: new connections must use the new ones
        reload = TLSReload(lambda: client, tls)
        threading.Thread(
            target=reload.every,
            args=(policy.CREDENTIALS_INTERVAL, component.stop_event),
            name="tls-reload",
            daemon=True,
        ).start()
    stop_on_signals(component.stop)
    try:
        with reported():
            component.run()
    except click.ClickException:
        raise
    except ServerFailed as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        client.close()
        lock.release()
