"""The machine commands: list-machines, machine remove."""

from __future__ import annotations

import click

from container.cli.context import cluster_of, service_errors, store_of
from container.cli.output import list_options, or_dash, print_table
from container.services import certificates, decommission, machines
from vulcano import policy
from vulcano.records import short_id


@click.command("list-machines")
@list_options
@click.pass_context
def list_machines(
    ctx: click.Context, no_legend: bool, full: bool, fields: str | None, as_json: bool
) -> None:
    """Machines in the cluster: MACHINE IP METADATA."""
    with service_errors():
        found = machines.list_machines(cluster_of(ctx))
    rows = [
        {
            "machine": m.id if full else short_id(m.id),
            "ip": or_dash(m.public_ip),
            "metadata": or_dash(",".join(f"{k}={v}" for k, v in sorted(m.metadata.items()))),
            "hostname": or_dash(m.hostname),
        }
        for m in found
    ]
    print_table(
        rows,
        columns=["machine", "ip", "metadata"],
        known=["machine", "ip", "metadata", "hostname"],
        fields=fields,
        no_legend=no_legend,
        as_json=as_json,
    )


@click.group("machine")
def machine() -> None:
    """Manage the cluster's machines."""


@machine.command("remove")
@click.option(
    "--block-timeout",
    type=click.FloatRange(min=0),
    default=policy.MACHINE_REMOVE_WAIT_SECONDS,
    show_default=True,
    help="Seconds to wait for the machine's units to move.",
)
@click.argument("machine_id", metavar="ID")
@click.pass_context
def remove(ctx: click.Context, machine_id: str, block_timeout: float) -> None:
    """Decommission a machine: its units move first, then its record and subnet go.

    ID is the machine's id or a unique leading part of it (list-machines shows them).
    In a TLS cluster this container made (--cluster), the machine's certificates are
    revoked too: etcd refuses its next connection.
    """
    cluster = cluster_of(ctx)
    with service_errors():
        done = decommission.remove_machine(
            cluster, machine_id, timeout=block_timeout, on_move=_print_move
        )
    released = f", subnet {', '.join(done.subnets)} released" if done.subnets else ""
    click.echo(f"Machine {done.machine_id} removed{released}")
    if cluster.name is not None:
        with service_errors():
            revoked = certificates.revoke_machine(store_of(ctx), cluster, done.hostname)
        if revoked is not None:
            click.echo(
                f"Certificates of {revoked.hostname} revoked ({len(revoked.serials)} new); "
                "the CRL is in etcd for the members"
            )


def _print_move(move: decommission.Move) -> None:
    if move.done:
        click.echo(f"Unit {move.unit} {move.note}")
    else:
        click.echo(f"{move.unit}: {move.note}", err=True)


commands: list[click.Command] = [list_machines, machine]
