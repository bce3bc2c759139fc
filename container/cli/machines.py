"""The machine commands: list-machines."""

from __future__ import annotations

import click

from container.cli.context import cluster_of, service_errors
from container.cli.output import list_options, or_dash, print_table
from container.services import machines
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


commands: list[click.Command] = [list_machines]
