"""How the `vulcano` CLI prints: fleetctl's tables and its ways of showing values.

Tables are tab-separated with an upper-cased header (`--no-legend` drops it), columns
chosen with `--fields`, values shortened unless `--full/-l`, or JSON with `--json`.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from vulcano.records import Machine, short_id

F = TypeVar("F", bound=Callable[..., Any])

# fleetctl shows content hashes cut to this many characters
SHORT_HASH_LENGTH = 7


def list_options(fn: F) -> F:
    """The flags every list command takes: --no-legend, --full/-l, --fields, --json."""
    fn = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(fn)
    fn = click.option("--fields", help="Comma-separated columns to print.")(fn)
    fn = click.option("--full", "-l", is_flag=True, help="Do not shorten machine ids or hashes.")(
        fn
    )
    fn = click.option("--no-legend", is_flag=True, help="Do not print the header line.")(fn)
    return fn


def print_table(
    rows: Sequence[dict[str, str]],
    *,
    columns: Sequence[str],
    known: Sequence[str],
    fields: str | None,
    no_legend: bool,
    as_json: bool,
) -> None:
    """Print ``rows`` in the default ``columns``, or the ``known`` ones ``fields`` names."""
    shown = list(columns)
    if fields:
        wanted = [f.strip().lower() for f in fields.split(",") if f.strip()]
        bad = [f for f in wanted if f not in known]
        if bad:
            raise click.BadParameter(
                f"unknown field {bad[0]!r} (known: {','.join(known)})", param_hint="--fields"
            )
        shown = wanted
    if as_json:
        click.echo(json.dumps([{c: r.get(c, "") for c in shown} for r in rows], indent=2))
        return
    lines = [] if no_legend else ["\t".join(c.upper() for c in shown)]
    lines += ["\t".join(r.get(c, "") or "-" for c in shown) for r in rows]
    if lines:
        click.echo("\n".join(lines))


def machine_label(machine_id: str | None, machine: Machine | None, full: bool) -> str:
    """fleetctl's MACHINE column: ``id.../ip`` (the whole id with ``full``), ``-`` if none."""
    if not machine_id:
        return "-"
    shown = machine_id if full else short_id(machine_id)
    return f"{shown}/{machine.public_ip}" if machine and machine.public_ip else shown


def content_hash(digest: str, full: bool) -> str:
    """A unit's content hash, shortened unless ``full``."""
    return digest if full else digest[:SHORT_HASH_LENGTH]


def timestamp(ts: float) -> str:
    """A moment in UTC, ``-`` for never."""
    if not ts:
        return "-"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def or_dash(value: str | None) -> str:
    """An empty value as fleetctl prints it."""
    return value or "-"
