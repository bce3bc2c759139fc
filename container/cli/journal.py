"""The journal command: a unit's output, and following it with -f."""

from __future__ import annotations

import contextlib

import click

from container.cli.context import cluster_of, service_errors
from container.services import journal as journals
from vulcano import unitnames


@click.command("journal")
@click.option("--lines", "-n", default=10, show_default=True, help="Lines to show.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output.")
@click.argument("unit")
@click.pass_context
def journal(ctx: click.Context, unit: str, lines: int, follow: bool) -> None:
    """Print a unit's recent output (stdout and stderr of its processes)."""
    cluster = cluster_of(ctx)
    unit = unitnames.mangle(unit)
    with service_errors():
        tail = journals.read_journal(cluster, unit, lines)
        for line in tail.lines:
            click.echo(line)
        if follow:
            # closed however the loop ends (Ctrl-C too): its etcd watch is cancelled
            with contextlib.closing(
                journals.follow_journal(cluster, unit, tail.seq, from_revision=tail.revision)
            ) as followed:
                for line in followed:
                    click.echo(line)


commands: list[click.Command] = [journal]
