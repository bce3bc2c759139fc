"""The audit command: who changed what in the cluster, when, and the unit files' diffs."""

from __future__ import annotations

import datetime
import json

import click

from container.cli.context import service_errors, store_of
from container.cli.output import list_options, or_dash, print_table, timestamp
from container.services.audit import DEFAULT_LIMIT, AuditEntry, AuditLog
from vulcano import unitnames

_COLUMNS = ["time", "actor", "face", "action", "target", "detail"]
_KNOWN = ["id", *_COLUMNS, "cluster"]


@click.command("audit")
@list_options
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1),
    default=DEFAULT_LIMIT,
    show_default=True,
    help="Show at most this many entries (the latest).",
)
@click.option("--unit", help="Only changes to this unit (a template also shows its instances).")
@click.option("--machine", help="Only changes to this machine (its full id).")
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
    help="Only changes from this moment (UTC) on.",
)
@click.option("--diff", "-p", "show_diff", is_flag=True, help="Print each entry with its diff.")
@click.pass_context
def audit(
    ctx: click.Context,
    no_legend: bool,
    full: bool,
    fields: str | None,
    as_json: bool,
    limit: int,
    unit: str | None,
    machine: str | None,
    since: datetime.datetime | None,
    show_diff: bool,
) -> None:
    """Changes made through the CLI and the panel: TIME ACTOR FACE ACTION TARGET DETAIL."""
    if unit and machine:
        raise click.UsageError("give --unit or --machine, not both")
    target = machine
    if unit:
        target = unitnames.mangle(unit)
        try:
            unitnames.parse_name(target)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--unit") from None
    start = since.replace(tzinfo=datetime.UTC).timestamp() if since else None
    with service_errors():
        found = AuditLog(store_of(ctx)).entries(limit=limit, since=start, target=target)
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in found], indent=2))
    elif show_diff:
        _print_with_diffs(found)
    else:
        print_table(
            [_row(e) for e in found],
            columns=_COLUMNS,
            known=_KNOWN,
            fields=fields,
            no_legend=no_legend,
            as_json=False,
        )


def _row(e: AuditEntry) -> dict[str, str]:
    return {
        "id": str(e.id),
        "time": timestamp(e.at),
        "actor": e.actor,
        "face": e.face,
        "action": e.action,
        "target": e.target,
        "detail": or_dash(e.detail),
        "cluster": or_dash(e.cluster),
    }


def _print_with_diffs(found: list[AuditEntry]) -> None:
    """git log -p's layout: a header per entry, then its diff."""
    for i, e in enumerate(found):
        if i:
            click.echo()
        click.echo(f"entry {e.id}: {e.action} {e.target}")
        click.echo(f"Actor:   {e.actor} ({e.face})")
        click.echo(f"Date:    {timestamp(e.at)}")
        click.echo(f"Cluster: {or_dash(e.cluster)}")
        if e.detail:
            click.echo(f"Detail:  {e.detail}")
        if e.diff:
            click.echo()
            click.echo(e.diff, nl=not e.diff.endswith("\n"))


commands: list[click.Command] = [audit]
