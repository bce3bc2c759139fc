"""SSH from the command line: the global flags fleetctl has, and `ssh`, `exec`, `ssh-forget`.

The flags (each also a VULCANO_* variable): --tunnel, --ssh-timeout, --request-timeout,
--strict-host-key-checking, --known-hosts-file, --ssh-username, --ssh-config,
--ssh-agent and --state-dir. The group hands them to its `Cluster` (`cluster.ssh`),
which also opens the tunnel when one is asked for.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from container import policy
from container.cli.context import cluster_of, service_errors
from container.services.provisioning import DEFAULT_STATE_DIR, STATE_DIR_VAR
from container.ssh import fanout, keys, session, targets
from container.ssh.connection import connect
from container.ssh.destinations import parse_destination
from container.ssh.errors import DestinationError
from container.ssh.knownhosts import KnownHosts
from container.ssh.settings import SSHSettings
from vulcano.records import SHORT_ID_LENGTH

DEFAULT_SSH_CONFIG = Path("~/.ssh/config")


def _check_tunnel(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value:
        try:
            parse_destination(value, "--tunnel")
        except DestinationError as exc:
            raise click.BadParameter(str(exc)) from None
    return value or None


def global_options(fn: Callable[..., None]) -> Callable[..., None]:
    """The group's SSH flags; `settings_from` makes them SSHSettings."""
    options = [
        click.option(
            "--tunnel",
            envvar="VULCANO_TUNNEL",
            callback=_check_tunnel,
            help="Reach etcd through an SSH port-forward via user@host[:port].",
        ),
        click.option(
            "--ssh-timeout",
            envvar="VULCANO_SSH_TIMEOUT",
            type=click.FloatRange(min=0.1),
            default=policy.SSH_TIMEOUT,
            show_default=True,
            help="Seconds to wait for an SSH connection and its handshake.",
        ),
        click.option(
            "--request-timeout",
            envvar="VULCANO_REQUEST_TIMEOUT",
            type=click.FloatRange(min=0.1),
            default=policy.REQUEST_TIMEOUT,
            show_default=True,
            help="Seconds to wait for one etcd request.",
        ),
        click.option(
            "--strict-host-key-checking",
            envvar="VULCANO_STRICT_HOST_KEY_CHECKING",
            type=click.BOOL,
            default=True,
            show_default=True,
            help="Refuse a host whose key changed (false: accept and record it).",
        ),
        click.option(
            "--known-hosts-file",
            envvar="VULCANO_KNOWN_HOSTS_FILE",
            type=click.Path(dir_okay=False, path_type=Path),
            help="known_hosts of hosts outside the cluster [default: STATE_DIR/known_hosts].",
        ),
        click.option(
            "--ssh-username",
            envvar="VULCANO_SSH_USERNAME",
            help="User to log in as [default: the ssh config's User, else core].",
        ),
        click.option(
            "--ssh-config",
            envvar="VULCANO_SSH_CONFIG",
            type=click.Path(dir_okay=False, path_type=Path),
            help=f"OpenSSH client config to honour [default: {DEFAULT_SSH_CONFIG}, if present].",
        ),
        click.option(
            "--ssh-agent",
            envvar="VULCANO_SSH_AGENT",
            is_flag=True,
            help="Also offer the keys of a running ssh-agent (never needed).",
        ),
        click.option(
            "--state-dir",
            envvar=STATE_DIR_VAR,
            # checked when a command uses it: reading a cluster needs no state dir
            type=click.Path(path_type=Path),
            default=DEFAULT_STATE_DIR,
            show_default=True,
            help="Where the container keeps its key (id_ed25519) and known_hosts.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def settings_from(flags: dict[str, Any]) -> tuple[str | None, float, SSHSettings]:
    """The tunnel, the etcd request timeout and the SSH settings the flags ask for."""
    # Every SSH failure is reported by our own message, naming the host; paramiko's
    # transport thread would also print its traceback to stderr.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    config = flags["ssh_config"]
    if config is None and DEFAULT_SSH_CONFIG.expanduser().is_file():
        config = DEFAULT_SSH_CONFIG.expanduser()
    settings = SSHSettings(
        state_dir=flags["state_dir"],
        known_hosts_file=flags["known_hosts_file"],
        strict_host_key_checking=flags["strict_host_key_checking"],
        timeout=flags["ssh_timeout"],
        username=flags["ssh_username"],
        config_file=config,
        allow_agent=flags["ssh_agent"],
    )
    return flags["tunnel"], flags["request_timeout"], settings


@click.command("ssh")
@click.option("--ssh-port", type=click.IntRange(1, 65535), help="Port [default: ssh config's, 22].")
@click.argument("target", metavar="MACHINE|UNIT")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def ssh(ctx: click.Context, target: str, command: tuple[str, ...], ssh_port: int | None) -> None:
    """Open a shell on a machine (full or short id) or where a unit runs, or run -- CMD."""
    cluster = cluster_of(ctx)
    with service_errors():
        machine = targets.ssh_target(cluster, target)
        endpoint = targets.machine_endpoint(machine, cluster.ssh, ssh_port, cluster.tunnel)
        with connect(endpoint, cluster.ssh) as connection:
            if command:
                status = session.stream(
                    connection, " ".join(command), sys.stdout.buffer, sys.stderr.buffer
                )
            else:
                status = session.interactive(connection)
    ctx.exit(status)


def _metadata(values: tuple[str, ...]) -> dict[str, list[str]]:
    wanted: dict[str, list[str]] = {}
    for value in values:
        for part in value.split(","):
            key, sep, wanted_value = part.partition("=")
            if not sep or not key.strip():
                raise click.BadParameter(f"{part!r} is not key=value", param_hint="--metadata")
            wanted.setdefault(key.strip(), []).append(wanted_value.strip())
    return wanted


@click.command("exec")
@click.option("--all", "everything", is_flag=True, help="Every machine of the cluster.")
@click.option("--machine", "machine_ids", multiple=True, help="A machine id (repeatable).")
@click.option("--metadata", multiple=True, help="Machines with metadata k=v (repeatable).")
@click.option("--ssh-port", type=click.IntRange(1, 65535), help="Port [default: ssh config's, 22].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per host.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def exec_(
    ctx: click.Context,
    everything: bool,
    machine_ids: tuple[str, ...],
    metadata: tuple[str, ...],
    ssh_port: int | None,
    as_json: bool,
    command: tuple[str, ...],
) -> None:
    """Run -- CMD on many machines at once; every host's exit status and output.

    Exits 1 when any host failed or could not be reached (the message names them).
    """
    if sum((everything, bool(machine_ids), bool(metadata))) != 1:
        raise click.UsageError("give exactly one of --all, --machine ID..., --metadata k=v")
    wanted = _metadata(metadata)
    cluster = cluster_of(ctx)
    with service_errors():
        with cluster.registry() as registry:
            known = registry.machines()
        chosen = targets.select_machines(
            known, everything=everything, ids=machine_ids, metadata=wanted
        )
        if not chosen:
            raise click.ClickException("no machine matches")
        endpoints = [
            targets.machine_endpoint(m, cluster.ssh, ssh_port, cluster.tunnel) for m in chosen
        ]
        outcomes = fanout.run_everywhere(endpoints, " ".join(command), cluster.ssh)
    failed = []
    for machine, outcome in zip(chosen, outcomes, strict=True):
        label = machine.id[:SHORT_ID_LENGTH]
        if outcome.result is None:
            failed.append(f"{label} (unreachable)")
        elif outcome.result.exit_status != 0:
            failed.append(f"{label} (exit {outcome.result.exit_status})")
        _print_outcome(machine.id, label, outcome, as_json)
    if failed:
        raise click.ClickException(
            f"{len(failed)} of {len(outcomes)} hosts failed: {', '.join(failed)}"
        )


def _print_outcome(machine_id: str, label: str, outcome: fanout.HostOutcome, as_json: bool) -> None:
    result = outcome.result
    if as_json:
        record = {
            "machine": machine_id,
            "address": outcome.endpoint.address,
            "exit_status": result.exit_status if result else None,
            "output": result.output.decode(errors="replace") if result else "",
            "error": outcome.error,
        }
        click.echo(json.dumps(record, sort_keys=True))
        return
    if result is None:
        click.echo(f"{label} unreachable: {outcome.error}")
        return
    for line in result.output.decode(errors="replace").splitlines():
        click.echo(f"{label} {line}")
    if result.truncated:
        click.echo(f"{label} [output cut at {policy.EXEC_OUTPUT_LIMIT} bytes]")
    click.echo(f"{label} exit {result.exit_status}")


@click.command("ssh-forget")
@click.argument("host")
@click.pass_context
def ssh_forget(ctx: click.Context, host: str) -> None:
    """Forget HOST[:PORT]'s key in known_hosts, to accept its new key on next connect."""
    settings = cluster_of(ctx).ssh
    try:
        destination = parse_destination(host, "HOST")
    except DestinationError as exc:
        raise click.BadParameter(str(exc), param_hint="HOST") from None
    known = KnownHosts(settings.known_hosts_path)
    removed = known.forget(destination.host, destination.port or 22)
    if not removed:
        raise click.ClickException(f"{host} is not in {known.path}")
    click.echo(f"forgot {removed} key(s) of {host} in {known.path}")


@click.command("ssh-key")
@click.pass_context
def ssh_key(ctx: click.Context) -> None:
    """Print the container's public SSH key (made on first use), for authorized_keys."""
    with service_errors():
        click.echo(keys.public_key_line(cluster_of(ctx).ssh.state_dir))


commands: list[click.Command] = [ssh, exec_, ssh_forget, ssh_key]
