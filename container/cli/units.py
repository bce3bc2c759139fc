"""The unit commands: submit, load, start, stop, unload, destroy, list-units,
list-unit-files, cat, status (fleetctl's names, flags and columns)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from container.cli.context import cluster_of, service_errors, unit_arguments
from container.cli.output import (
    content_hash,
    list_options,
    machine_label,
    or_dash,
    print_table,
    timestamp,
)
from container.services import listings, sources, units, waiting
from container.services import status as statuses
from container.services.cluster import Cluster
from vulcano import policy, unitnames
from vulcano.records import DesiredState, UnitSpec

F = TypeVar("F", bound=Callable[..., object])

_REACHED = {DesiredState.LAUNCHED: "launched on", DesiredState.LOADED: "loaded on"}


def _replace_option(fn: F) -> F:
    return click.option(
        "--replace", is_flag=True, help="Replace a unit submitted with other content."
    )(fn)


def _wait_options(fn: F) -> F:
    fn = click.option(
        "--block-timeout",
        type=float,
        default=policy.UNIT_COMMAND_WAIT_SECONDS,
        show_default=True,
        help="Seconds to wait for the cluster.",
    )(fn)
    fn = click.option("--no-block", is_flag=True, help="Do not wait for the cluster.")(fn)
    return fn


def _print_progress(p: waiting.Progress) -> None:
    if not p.reached:
        click.echo(f"{p.unit}: {p.note}", err=True)
        return
    verb = _REACHED.get(p.desired)
    where = machine_label(p.machine_id, p.machine, full=False)
    click.echo(f"Unit {p.unit} {verb} {where}" if verb else f"Unit {p.unit} inactive")


def _wait(
    cluster: Cluster,
    names: list[str],
    desired: DesiredState,
    no_block: bool,
    timeout: float,
    retried: waiting.Failures | None = None,
) -> None:
    if not no_block:
        waiting.wait_until(
            cluster,
            names,
            desired,
            timeout=timeout,
            on_progress=_print_progress,
            retried=retried,
        )


@click.command("submit")
@_replace_option
@click.argument("unit", nargs=-1, required=True)
@click.pass_context
def submit(ctx: click.Context, unit: tuple[str, ...], replace: bool) -> None:
    """Store unit files in the cluster (desired state: inactive)."""
    with unit_arguments():
        given = sources.from_arguments(unit)
    with service_errors():
        units.submit(cluster_of(ctx), given, replace=replace)


@click.command("load")
@_replace_option
@_wait_options
@click.argument("unit", nargs=-1, required=True)
@click.pass_context
def load(
    ctx: click.Context, unit: tuple[str, ...], replace: bool, no_block: bool, block_timeout: float
) -> None:
    """Schedule units onto machines without starting them."""
    with unit_arguments():
        given = sources.from_arguments(unit)
    cluster = cluster_of(ctx)
    with service_errors():
        names = units.load(cluster, given, replace=replace)
        _wait(cluster, names, DesiredState.LOADED, no_block, block_timeout)


@click.command("start")
@_replace_option
@_wait_options
@click.argument("unit", nargs=-1, required=True)
@click.pass_context
def start(
    ctx: click.Context, unit: tuple[str, ...], replace: bool, no_block: bool, block_timeout: float
) -> None:
    """Launch units (submitting files, instantiating templates); waits unless --no-block."""
    with unit_arguments():
        given = sources.from_arguments(unit)
    cluster = cluster_of(ctx)
    with service_errors():
        # failures from before this start are retried, so they do not end the wait
        retried = waiting.failures_now(cluster, [s.name for s in given])
        names = units.start(cluster, given, replace=replace)
        _wait(cluster, names, DesiredState.LAUNCHED, no_block, block_timeout, retried)


@click.command("stop")
@_wait_options
@click.argument("unit", nargs=-1, required=True)
@click.pass_context
def stop(ctx: click.Context, unit: tuple[str, ...], no_block: bool, block_timeout: float) -> None:
    """Stop units, keeping them loaded on their machine."""
    with unit_arguments():
        given = sources.names(unit)
    cluster = cluster_of(ctx)
    with service_errors():
        names = units.stop(cluster, given)
        _wait(cluster, names, DesiredState.LOADED, no_block, block_timeout)


@click.command("unload")
@_wait_options
@click.argument("unit", nargs=-1, required=True)
@click.pass_context
def unload(ctx: click.Context, unit: tuple[str, ...], no_block: bool, block_timeout: float) -> None:
    """Stop units and take them off their machines (they stay submitted)."""
    with unit_arguments():
        given = sources.names(unit)
    cluster = cluster_of(ctx)
    with service_errors():
        names = units.unload(cluster, given)
        _wait(cluster, names, DesiredState.INACTIVE, no_block, block_timeout)


@click.command("destroy")
@click.argument("unit", nargs=-1, required=True)
@click.pass_context
def destroy(ctx: click.Context, unit: tuple[str, ...]) -> None:
    """Stop units and remove them from the cluster."""
    with unit_arguments():
        given = sources.names(unit)
    with service_errors():
        names = units.destroy(cluster_of(ctx), given)
    for name in names:
        click.echo(f"Destroyed {name}")


@click.command("list-units")
@list_options
@click.pass_context
def list_units(
    ctx: click.Context, no_legend: bool, full: bool, fields: str | None, as_json: bool
) -> None:
    """Units the cluster runs or tries to: UNIT MACHINE ACTIVE SUB (and HEALTH by --fields)."""
    with service_errors():
        found = listings.list_units(cluster_of(ctx))
    rows = []
    for u in found:
        st = u.state
        rows.append(
            {
                "unit": u.name,
                "machine": machine_label(u.machine_id, u.machine, full),
                "active": st.active if st else "inactive",
                "sub": st.sub if st else "dead",
                "load": st.load if st else "not-found",
                "dstate": u.spec.desired if u.spec else "-",
                "hash": content_hash(u.spec.hash, full) if u.spec else "-",
                "reason": or_dash(st.reason if st else ""),
                "sandbox": or_dash(st.sandbox_ip if st else None),
                "health": str(u.checks.status) if u.checks and u.checks.checks else "-",
            }
        )
    print_table(
        rows,
        columns=["unit", "machine", "active", "sub"],
        known=[
            "unit",
            "machine",
            "active",
            "sub",
            "load",
            "dstate",
            "hash",
            "reason",
            "sandbox",
            "health",
        ],
        fields=fields,
        no_legend=no_legend,
        as_json=as_json,
    )


@click.command("list-unit-files")
@list_options
@click.pass_context
def list_unit_files(
    ctx: click.Context, no_legend: bool, full: bool, fields: str | None, as_json: bool
) -> None:
    """Submitted units: UNIT HASH DSTATE STATE TARGET."""
    with service_errors():
        found = listings.list_unit_files(cluster_of(ctx))
    rows = [
        {
            "unit": u.spec.name,
            "hash": content_hash(u.spec.hash, full),
            "dstate": u.spec.desired,
            "state": u.current or "-",
            "target": "global"
            if u.spec.options.global_
            else machine_label(u.target_id, u.target, full),
            "reason": or_dash(u.state.reason if u.state else ""),
        }
        for u in found
    ]
    print_table(
        rows,
        columns=["unit", "hash", "dstate", "state", "target"],
        known=["unit", "hash", "dstate", "state", "target", "reason"],
        fields=fields,
        no_legend=no_legend,
        as_json=as_json,
    )


@click.command("cat")
@click.argument("unit")
@click.pass_context
def cat(ctx: click.Context, unit: str) -> None:
    """Print a submitted unit file."""
    with service_errors():
        text = units.unit_file(cluster_of(ctx), unitnames.mangle(unit))
    click.echo(text, nl=not text.endswith("\n"))


@click.command("status")
@click.option("--lines", "-n", default=10, show_default=True, help="Journal lines to show.")
@click.argument("unit", nargs=-1, required=True)
@click.pass_context
def status(ctx: click.Context, unit: tuple[str, ...], lines: int) -> None:
    """Show units' state, machine, reason and recent output (exit 3 if not active)."""
    all_active = True
    first = True
    with service_errors():
        names = [unitnames.mangle(u) for u in unit]
        for found in statuses.unit_statuses(cluster_of(ctx), names, lines):
            all_active = all_active and found.active
            for i in found.instances:
                if not first:
                    click.echo()
                first = False
                _print_instance(found.spec, i)
            if found.journal:
                click.echo()
                for line in found.journal:
                    click.echo(line)
    if not all_active:
        ctx.exit(3)


def _print_instance(spec: UnitSpec, i: listings.UnitOnMachine) -> None:
    st = i.state
    click.echo(f"● {i.name}")
    click.echo(
        f"   Loaded: {st.load if st else 'not-found'} (desired {spec.desired}, "
        f"hash {content_hash(spec.hash, False)})"
    )
    click.echo(
        f"   Active: {st.active if st else 'inactive'} ({st.sub if st else 'dead'}) since "
        f"{timestamp(st.since if st else 0)}"
    )
    click.echo(f"  Machine: {machine_label(i.machine_id, i.machine, True)}")
    if st and st.sandbox_ip:
        click.echo(f"  Sandbox: {st.sandbox_ip}")
    if st and st.reason:
        click.echo(f"   Reason: {st.reason}")
    if i.checks is not None and (i.checks.checks or i.checks.note):
        click.echo(f"   Health: {i.checks.status}" if i.checks.checks else "   Health: -")
        for name, r in sorted(i.checks.checks.items()):
            click.echo(f"    Check: {name} {r.status} since {timestamp(r.since)}: {r.output}")
        if i.checks.note:
            click.echo(f"     Note: {i.checks.note}")


commands: list[click.Command] = [
    submit,
    load,
    start,
    stop,
    unload,
    destroy,
    list_units,
    list_unit_files,
    cat,
    status,
]
