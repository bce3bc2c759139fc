"""`vulcano compose convert|up|down`: a Compose file as units on the cluster.

``convert`` writes the unit files (``--dry-run`` prints them instead) and a report of
every key: KEY RESULT DETAIL (``--json`` for it as JSON); it exits 1 when the file
cannot be converted, naming the key. ``up`` converts, submits and starts the units in
dependency order (`container.services.compose`); ``down`` destroys them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import click

from container import compose
from container.cli.context import cluster_of, service_errors
from container.cli.output import print_table
from container.cli.units import _print_progress
from container.services import compose as compose_service
from vulcano import policy
from vulcano.clierrors import reported

F = TypeVar("F", bound=Callable[..., Any])


def _conversion_options(fn: F) -> F:
    for option in reversed(
        [
            click.argument("file", type=click.Path(dir_okay=False, path_type=Path)),
            click.option(
                "--runtime",
                type=click.Choice(compose.RUNTIMES),
                default="docker",
                show_default=True,
                help="The container runtime the units run (CoreOS machines have docker).",
            ),
            click.option(
                "--runtime-arg",
                "runtime_args",
                multiple=True,
                help="An option of the runtime itself, before its command (repeatable), "
                "e.g. --runtime-arg=--runtime=runc.",
            ),
            click.option(
                "--run-arg",
                "run_args",
                multiple=True,
                help="An option of every `run` (repeatable), e.g. --run-arg=--ulimit=nofile=1024.",
            ),
            click.option(
                "--prefix",
                "--project-name",
                "-p",
                "project",
                help="The project's name, prefixing every unit (default: the file's name: "
                "key, else its directory's name).",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def _project_default(path: Path) -> str:
    name = re.sub(r"[^a-z0-9_-]", "", path.resolve().parent.name.lower()).lstrip("_-")
    return name or "compose"


def _converter(
    file: Path,
    runtime: str,
    runtime_args: tuple[str, ...],
    run_args: tuple[str, ...],
    project: str | None,
) -> Callable[[Mapping[str, str]], compose.Conversion]:
    """Read the file once; a function converting it with the addresses known so far."""
    with reported():
        loaded = compose.load_file(file, dict(os.environ))
        if project is not None:
            name = compose.project_name(project)
        elif "name" in loaded.data:
            name = ""  # the file's own name: key
        else:
            name = _project_default(file)
    options = compose.Options(
        project=name,
        runtime=compose.Runtime(runtime, runtime_args, run_args),
        base_dir=file.resolve().parent,
    )

    def convert(addresses: Mapping[str, str]) -> compose.Conversion:
        with reported():
            return compose.convert(loaded, replace(options, addresses=dict(addresses)))

    return convert


def _print_report(conversion: compose.Conversion, no_legend: bool, as_json: bool) -> None:
    rows = [{"key": r.key, "result": str(r.result), "detail": r.detail} for r in conversion.report]
    print_table(
        rows,
        columns=["key", "result", "detail"],
        known=["key", "result", "detail"],
        fields=None,
        no_legend=no_legend,
        as_json=as_json,
    )


@click.group("compose")
def compose_group() -> None:
    """Run a Compose file's services as units on the cluster."""


@compose_group.command("convert")
@_conversion_options
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory the unit files are written to.",
)
@click.option("--dry-run", is_flag=True, help="Print the unit files instead of writing them.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-legend", is_flag=True, help="Do not print the report's header line.")
def convert(
    file: Path,
    runtime: str,
    runtime_args: tuple[str, ...],
    run_args: tuple[str, ...],
    project: str | None,
    out: Path,
    dry_run: bool,
    as_json: bool,
    no_legend: bool,
) -> None:
    """Write unit files for FILE's services and report what became of every key."""
    conversion = _converter(file, runtime, runtime_args, run_args, project)({})
    if dry_run:
        for unit in conversion.files:
            click.echo(f"# {unit.name}", err=as_json)
            click.echo(unit.text, err=as_json)
    else:
        try:
            out.mkdir(parents=True, exist_ok=True)
            for unit in conversion.files:
                (out / unit.name).write_text(unit.text)
        except OSError as exc:
            raise click.ClickException(f"{out}: {exc.strerror}") from None
        for unit in conversion.files:
            click.echo(f"Wrote {out / unit.name}", err=True)
    _print_report(conversion, no_legend, as_json)


@compose_group.command("up")
@_conversion_options
@click.option("--replace", is_flag=True, help="Replace units submitted with other content.")
@click.option(
    "--block-timeout",
    type=float,
    default=policy.UNIT_COMMAND_WAIT_SECONDS,
    show_default=True,
    help="Seconds to wait for each level of services to be launched.",
)
@click.pass_context
def up(
    ctx: click.Context,
    file: Path,
    runtime: str,
    runtime_args: tuple[str, ...],
    run_args: tuple[str, ...],
    project: str | None,
    replace: bool,
    block_timeout: float,
) -> None:
    """Convert FILE, then submit and start its units, dependencies first; prints where
    each service is reached (SERVICE UNITS ADDRESS)."""
    convert = _converter(file, runtime, runtime_args, run_args, project)
    cluster = cluster_of(ctx)
    with service_errors():
        conversion, addresses = compose_service.up(
            cluster, convert, replace=replace, timeout=block_timeout, on_progress=_print_progress
        )
    rows = [
        {
            "service": s.service,
            "units": " ".join(s.starts),
            "address": addresses.get(s.service, ""),
        }
        for s in conversion.services
    ]
    print_table(
        rows,
        columns=["service", "units", "address"],
        known=["service", "units", "address"],
        fields=None,
        no_legend=False,
        as_json=False,
    )


@compose_group.command("down")
@_conversion_options
@click.option(
    "--block-timeout",
    type=float,
    default=policy.UNIT_COMMAND_WAIT_SECONDS,
    show_default=True,
    help="Seconds to wait for the units to stop.",
)
@click.pass_context
def down(
    ctx: click.Context,
    file: Path,
    runtime: str,
    runtime_args: tuple[str, ...],
    run_args: tuple[str, ...],
    project: str | None,
    block_timeout: float,
) -> None:
    """Stop and destroy the units of FILE's services."""
    conversion = _converter(file, runtime, runtime_args, run_args, project)({})
    with service_errors():
        names = compose_service.down(cluster_of(ctx), conversion, timeout=block_timeout)
    for name in names:
        click.echo(f"Destroyed {name}")


commands: list[click.Command] = [compose_group]
