"""The check commands: add, list and remove a unit's health checks (`vulcano check ...`)."""

from __future__ import annotations

import click

from container.cli.context import cluster_of, service_errors
from container.cli.output import list_options, machine_label, or_dash, print_table
from container.services import checks as checks_service
from vulcano import unitnames
from vulcano.endpoints import format_duration

_COLUMNS = ["unit", "check", "kind", "target", "interval", "machine", "status", "output"]


@click.group("check")
def check() -> None:
    """Health checks of units: the file's Check= lines and those added at runtime."""


@check.command("add")
@click.option("--name", help="The check's name (default: made from its kind and target).")
@click.argument("unit")
@click.argument("line", metavar="CHECK")
@click.pass_context
def add(ctx: click.Context, unit: str, line: str, name: str | None) -> None:
    """Add CHECK (a Check= value: 'http :8080/ready interval=2s') to a unit, not restarting it."""
    with service_errors():
        spec = checks_service.add_check(cluster_of(ctx), unitnames.mangle(unit), line, name)
    click.echo(f"Added check {spec.name} to {unitnames.mangle(unit)}: {spec.to_line()}")


@check.command("remove")
@click.argument("unit")
@click.argument("name")
@click.pass_context
def remove(ctx: click.Context, unit: str, name: str) -> None:
    """Remove a check added with `check add` (the file's own are the file's)."""
    with service_errors():
        checks_service.remove_check(cluster_of(ctx), unitnames.mangle(unit), name)
    click.echo(f"Removed check {name} from {unitnames.mangle(unit)}")


@check.command("list")
@list_options
@click.argument("unit", required=False)
@click.pass_context
def list_(
    ctx: click.Context,
    unit: str | None,
    no_legend: bool,
    full: bool,
    fields: str | None,
    as_json: bool,
) -> None:
    """Checks and their status per machine: UNIT CHECK KIND TARGET INTERVAL MACHINE STATUS."""
    with service_errors():
        rows = checks_service.list_checks(cluster_of(ctx), unitnames.mangle(unit) if unit else None)
    table = [
        {
            "unit": r.unit,
            "check": r.name,
            "kind": r.spec.kind,
            "target": " ".join(r.spec.target),
            "interval": format_duration(r.spec.interval),
            "machine": machine_label(r.machine_id, r.machine, full),
            "status": str(r.result.status) if r.result else "-",
            "output": or_dash(r.result.output if r.result else ""),
            "source": r.source,
        }
        for r in rows
    ]
    print_table(
        table,
        columns=_COLUMNS,
        known=[*_COLUMNS, "source"],
        fields=fields,
        no_legend=no_legend,
        as_json=as_json,
    )


commands: list[click.Command] = [check]
