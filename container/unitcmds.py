"""fleetctl's commands in the `vulcano` CLI: submit, load, start, stop, unload, destroy,
list-machines, list-units, list-unit-files, cat, status, journal.

They talk to etcd directly (`vulcano --endpoint URLS ...`), through the same Registry
the engine reads, so the CLI and the cluster agree on what a unit is.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from vulcano import etcd, policy, units
from vulcano.clierrors import guarded
from vulcano.errors import VulcanoError
from vulcano.keyspace import Keyspace
from vulcano.records import DesiredState, Machine, UnitSource, UnitState, short_id
from vulcano.registry import Registry


@dataclass
class Cluster:
    endpoint: str
    prefix: str
    _store: Registry | None = None

    @property
    def store(self) -> Registry:
        if self._store is None:
            try:
                keyspace = Keyspace(self.prefix)
                client = etcd.connect(self.endpoint)
            except (VulcanoError, ValueError) as exc:
                raise click.UsageError(str(exc)) from None
            self._store = Registry(client, keyspace)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.client.close()


def _cluster(ctx: click.Context) -> Cluster:
    obj = ctx.find_object(Cluster)
    if obj is None:
        raise click.UsageError("no cluster: give --endpoint")
    return obj


def read_sources(args: Iterable[str]) -> list[UnitSource]:
    """Arguments are unit files (a path that exists or has a '/') or unit names."""
    out: list[UnitSource] = []
    for arg in args:
        if os.path.isfile(arg) or "/" in arg:
            path = Path(arg)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise click.BadParameter(f"{arg}: {exc.strerror}", param_hint="UNIT") from None
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise click.BadParameter(f"{arg}: not UTF-8 text", param_hint="UNIT") from None
            out.append(UnitSource(path.name, text))
        else:
            out.append(UnitSource(arg))
    for src in out:
        try:
            units.parse_name(src.name)
        except units.UnitNameError as exc:
            raise click.BadParameter(str(exc), param_hint="UNIT") from None
    return out


def _machine_label(machine_id: str | None, machines: dict[str, Machine], full: bool) -> str:
    if not machine_id:
        return "-"
    rec = machines.get(machine_id)
    shown = machine_id if full else short_id(machine_id)
    return f"{shown}/{rec.public_ip}" if rec and rec.public_ip else shown


def _table(
    rows: list[dict[str, str]],
    columns: list[str],
    fields: str | None,
    no_legend: bool,
    as_json: bool,
    allowed: list[str],
) -> None:
    if fields:
        wanted = [f.strip().lower() for f in fields.split(",") if f.strip()]
        bad = [f for f in wanted if f not in allowed]
        if bad:
            raise click.BadParameter(
                f"unknown field {bad[0]!r} (known: {','.join(allowed)})", param_hint="--fields"
            )
        columns = wanted
    if as_json:
        click.echo(json.dumps([{c: r.get(c, "") for c in columns} for r in rows], indent=2))
        return
    lines = [] if no_legend else ["\t".join(c.upper() for c in columns)]
    lines += ["\t".join(r.get(c, "") or "-" for c in columns) for r in rows]
    if lines:
        click.echo("\n".join(lines))


def _list_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(fn)
    fn = click.option("--fields", help="Comma-separated columns to print.")(fn)
    fn = click.option("--full", "-l", is_flag=True, help="Do not shorten machine ids or hashes.")(
        fn
    )
    fn = click.option("--no-legend", is_flag=True, help="Do not print the header line.")(fn)
    return fn


def _since(ts: float) -> str:
    if not ts:
        return "-"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def current_state(state: UnitState | None) -> str:
    """fleet's STATE column: what the cluster actually has (inactive, loaded, launched)."""
    if state is None or state.machine_id is None:
        return DesiredState.INACTIVE
    if state.running:
        return DesiredState.LAUNCHED
    if state.load == "loaded":
        return DesiredState.LOADED
    return DesiredState.INACTIVE


def register(main: click.Group) -> None:
    """Add the unit commands to the `vulcano` group."""

    @main.command("list-machines")
    @_list_options
    @click.pass_context
    def list_machines(
        ctx: click.Context, no_legend: bool, full: bool, fields: str | None, as_json: bool
    ) -> None:
        """Machines in the cluster: MACHINE IP METADATA."""
        store = _cluster(ctx).store
        rows = []
        for m in guarded(store.machines):
            md = ",".join(f"{k}={v}" for k, v in sorted(m.metadata.items())) or "-"
            rows.append(
                {
                    "machine": m.id if full else short_id(m.id),
                    "ip": m.public_ip or "-",
                    "metadata": md,
                    "hostname": m.hostname or "-",
                }
            )
        _table(
            rows,
            ["machine", "ip", "metadata"],
            fields,
            no_legend,
            as_json,
            ["machine", "ip", "metadata", "hostname"],
        )

    @main.command("list-units")
    @_list_options
    @click.pass_context
    def list_units(
        ctx: click.Context, no_legend: bool, full: bool, fields: str | None, as_json: bool
    ) -> None:
        """Units the cluster runs or tries to: UNIT MACHINE ACTIVE SUB."""
        store = _cluster(ctx).store
        specs = guarded(store.specs)
        reports = guarded(store.machine_states)
        machines = {m.id: m for m in guarded(store.machines)}
        by_unit: dict[str, list[UnitState | None]] = {}
        for report in reports:
            by_unit.setdefault(report.name, []).append(report)
        for name, spec in specs.items():
            if (
                spec.desired != DesiredState.INACTIVE
                and name not in by_unit
                and not units.is_template(name)
            ):
                by_unit[name] = [None]
        rows = []
        for name, st in ((n, s) for n in sorted(by_unit) for s in by_unit[n]):
            found = specs.get(name)
            rows.append(
                {
                    "unit": name,
                    "machine": _machine_label(st.machine_id if st else None, machines, full),
                    "active": st.active if st else "inactive",
                    "sub": st.sub if st else "dead",
                    "load": st.load if st else "not-found",
                    "dstate": found.desired if found else "-",
                    "hash": (found.hash if full else found.hash[:7]) if found else "-",
                    "reason": (st.reason if st else "") or "-",
                    "sandbox": (st.sandbox_ip if st else None) or "-",
                }
            )
        _table(
            rows,
            ["unit", "machine", "active", "sub"],
            fields,
            no_legend,
            as_json,
            ["unit", "machine", "active", "sub", "load", "dstate", "hash", "reason", "sandbox"],
        )

    @main.command("list-unit-files")
    @_list_options
    @click.pass_context
    def list_unit_files(
        ctx: click.Context, no_legend: bool, full: bool, fields: str | None, as_json: bool
    ) -> None:
        """Submitted units: UNIT HASH DSTATE STATE TARGET."""
        store = _cluster(ctx).store
        specs = guarded(store.specs)
        states = guarded(store.states)
        placed = guarded(store.placements)
        machines = {m.id: m for m in guarded(store.machines)}
        rows = []
        for name, spec in sorted(specs.items()):
            targets = placed.get(name, [])
            if spec.options.global_:
                target = "global"
            else:
                target = _machine_label(targets[0] if targets else None, machines, full)
            st = states.get(name)
            rows.append(
                {
                    "unit": name,
                    "hash": spec.hash if full else spec.hash[:7],
                    "dstate": spec.desired,
                    "state": current_state(st) if not spec.options.global_ else "-",
                    "target": target,
                    "reason": (st.reason if st else "") or "-",
                }
            )
        _table(
            rows,
            ["unit", "hash", "dstate", "state", "target"],
            fields,
            no_legend,
            as_json,
            ["unit", "hash", "dstate", "state", "target", "reason"],
        )

    @main.command("submit")
    @click.option("--replace", is_flag=True, help="Replace a unit submitted with other content.")
    @click.argument("unit", nargs=-1, required=True)
    @click.pass_context
    def submit(ctx: click.Context, unit: tuple[str, ...], replace: bool) -> None:
        """Store unit files in the cluster (desired state: inactive)."""
        _submit_files(ctx, unit, replace)

    def _submit_files(ctx: click.Context, args: Iterable[str], replace: bool) -> list[str]:
        sources = read_sources(args)
        store = _cluster(ctx).store
        with_text = [s for s in sources if s.text is not None]
        if with_text:
            guarded(lambda: store.submit(with_text, replace=replace))
        return [s.name for s in sources]

    def _move(
        ctx: click.Context,
        args: Iterable[str],
        desired: DesiredState,
        replace: bool,
        no_block: bool,
        timeout: float,
    ) -> None:
        names = _submit_files(ctx, args, replace)
        # `start web@.service web@1.service`: the template file only brings the content
        instances = {units.parse_name(n).template for n in names}
        names = [n for n in names if not (units.is_template(n) and n in instances)]
        store = _cluster(ctx).store
        guarded(lambda: store.set_desired(names, desired))
        if no_block:
            return
        _wait(store, names, desired, timeout)

    def _wait_options(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option(
            "--block-timeout",
            type=float,
            default=policy.UNIT_COMMAND_WAIT_SECONDS,
            show_default=True,
            help="Seconds to wait for the cluster.",
        )(fn)
        fn = click.option("--no-block", is_flag=True, help="Do not wait for the cluster.")(fn)
        return fn

    @main.command("load")
    @click.option("--replace", is_flag=True, help="Replace a unit submitted with other content.")
    @_wait_options
    @click.argument("unit", nargs=-1, required=True)
    @click.pass_context
    def load(
        ctx: click.Context,
        unit: tuple[str, ...],
        replace: bool,
        no_block: bool,
        block_timeout: float,
    ) -> None:
        """Schedule units onto machines without starting them."""
        _move(ctx, unit, DesiredState.LOADED, replace, no_block, block_timeout)

    @main.command("start")
    @click.option("--replace", is_flag=True, help="Replace a unit submitted with other content.")
    @_wait_options
    @click.argument("unit", nargs=-1, required=True)
    @click.pass_context
    def start(
        ctx: click.Context,
        unit: tuple[str, ...],
        replace: bool,
        no_block: bool,
        block_timeout: float,
    ) -> None:
        """Launch units (submitting files, instantiating templates); waits unless --no-block."""
        _move(ctx, unit, DesiredState.LAUNCHED, replace, no_block, block_timeout)

    @main.command("stop")
    @_wait_options
    @click.argument("unit", nargs=-1, required=True)
    @click.pass_context
    def stop(
        ctx: click.Context, unit: tuple[str, ...], no_block: bool, block_timeout: float
    ) -> None:
        """Stop units, keeping them loaded on their machine."""
        _set_desired(ctx, unit, DesiredState.LOADED, no_block, block_timeout)

    @main.command("unload")
    @_wait_options
    @click.argument("unit", nargs=-1, required=True)
    @click.pass_context
    def unload(
        ctx: click.Context, unit: tuple[str, ...], no_block: bool, block_timeout: float
    ) -> None:
        """Stop units and take them off their machines (they stay submitted)."""
        _set_desired(ctx, unit, DesiredState.INACTIVE, no_block, block_timeout)

    @main.command("destroy")
    @click.argument("unit", nargs=-1, required=True)
    @click.pass_context
    def destroy(ctx: click.Context, unit: tuple[str, ...]) -> None:
        """Stop units and remove them from the cluster."""
        names = [s.name for s in read_sources(unit)]
        store = _cluster(ctx).store
        guarded(lambda: store.destroy(names))
        for name in names:
            click.echo(f"Destroyed {name}")

    @main.command("cat")
    @click.argument("unit")
    @click.pass_context
    def cat(ctx: click.Context, unit: str) -> None:
        """Print a submitted unit file."""
        store = _cluster(ctx).store
        spec = guarded(lambda: store.spec(unit))
        if spec is None:
            raise click.ClickException(f"unit {unit} is not submitted")
        text = guarded(lambda: store.text(spec.hash))
        if text is None:
            raise click.ClickException(f"unit {unit}: content {spec.hash} is missing")
        click.echo(text, nl=not text.endswith("\n"))

    @main.command("status")
    @click.option("--lines", "-n", default=10, show_default=True, help="Journal lines to show.")
    @click.argument("unit", nargs=-1, required=True)
    @click.pass_context
    def status(ctx: click.Context, unit: tuple[str, ...], lines: int) -> None:
        """Show units' state, machine, reason and recent output (exit 3 if not active)."""
        store = _cluster(ctx).store
        machines = {m.id: m for m in guarded(store.machines)}
        reports = guarded(store.machine_states)
        all_active = True
        first = True
        for name in unit:
            spec = guarded(functools.partial(store.spec, name))
            if spec is None:
                raise click.ClickException(f"unit {name} is not submitted")
            mine: list[UnitState | None] = [r for r in reports if r.name == name] or [None]
            for st in mine:
                if not first:
                    click.echo()
                first = False
                active = st.active if st else "inactive"
                all_active = all_active and active == "active"
                click.echo(f"● {name}")
                click.echo(
                    f"   Loaded: {st.load if st else 'not-found'} (desired {spec.desired}, "
                    f"hash {spec.hash[:7]})"
                )
                click.echo(
                    f"   Active: {active} ({st.sub if st else 'dead'}) since "
                    f"{_since(st.since if st else 0)}"
                )
                label = _machine_label(st.machine_id if st else None, machines, True)
                click.echo(f"  Machine: {label}")
                if st and st.sandbox_ip:
                    click.echo(f"  Sandbox: {st.sandbox_ip}")
                if st and st.reason:
                    click.echo(f"   Reason: {st.reason}")
            journal = guarded(functools.partial(store.journal, name))
            if journal and lines > 0:
                click.echo()
                for line in journal[-lines:]:
                    click.echo(line)
        if not all_active:
            ctx.exit(3)

    @main.command("journal")
    @click.option("--lines", "-n", default=10, show_default=True, help="Lines to show.")
    @click.option("--follow", "-f", is_flag=True, help="Keep printing new output.")
    @click.argument("unit")
    @click.pass_context
    def journal(ctx: click.Context, unit: str, lines: int, follow: bool) -> None:
        """Print a unit's recent output (stdout and stderr of its processes)."""
        store = _cluster(ctx).store
        if guarded(lambda: store.spec(unit)) is None:
            raise click.ClickException(f"unit {unit} is not submitted")
        seen = guarded(lambda: store.journal_seq(unit))
        out = guarded(lambda: store.journal(unit))
        for line in out[-lines:] if lines > 0 else []:
            click.echo(line)
        while follow:
            time.sleep(policy.UNIT_COMMAND_POLL_INTERVAL)
            seq = guarded(lambda: store.journal_seq(unit))
            if seq > seen:
                out = guarded(lambda: store.journal(unit))
                for line in out[-min(len(out), seq - seen) :]:
                    click.echo(line)
                seen = seq


def _set_desired(
    ctx: click.Context, unit: tuple[str, ...], desired: DesiredState, no_block: bool, timeout: float
) -> None:
    """Move submitted units back to ``desired`` (stop, unload); waits unless --no-block."""
    names = [s.name for s in read_sources(unit)]
    store = _cluster(ctx).store
    guarded(lambda: store.set_desired(names, desired))
    if not no_block:
        _wait(store, names, desired, timeout)


def _reached(desired: DesiredState, st: UnitState | None) -> tuple[bool, str]:
    """Has a unit reached ``desired``? And a word on where it stands."""
    if desired == DesiredState.LAUNCHED:
        if st is not None and st.active == "failed":
            return False, f"failed ({st.sub}) {st.reason}".strip()
        ok = st is not None and st.machine_id is not None and st.active == "active"
    elif desired == DesiredState.LOADED:
        ok = st is not None and st.machine_id is not None and st.active != "active"
        ok = ok and st is not None and st.load == "loaded"
    else:
        ok = st is None or st.machine_id is None
    where = "waiting"
    if st is not None:
        where = st.reason or f"{st.active} ({st.sub})"
    return ok, where


def _wait(store: Registry, names: list[str], desired: DesiredState, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    machines: dict[str, Machine] = {}
    pending = list(names)
    last_note: dict[str, str] = {}
    while True:
        reports: dict[str, list[UnitState]] = {}
        for report in guarded(store.machine_states):
            reports.setdefault(report.name, []).append(report)
        still = []
        for name in pending:
            mine = reports.get(name) or []
            placed = [r for r in mine if r.machine_id]
            # every machine running it (a Global unit has several) must have got there
            checks = [_reached(desired, r) for r in placed] or [_reached(desired, None)]
            if not placed and mine:
                checks = [_reached(desired, mine[0])]
            ok = all(c[0] for c in checks)
            note = next((c[1] for c in checks if not c[0]), checks[0][1])
            st = placed[0] if placed else None
            if ok:
                if not machines:
                    machines = {m.id: m for m in guarded(store.machines)}
                where = _machine_label(st.machine_id if st else None, machines, False)
                verb = {DesiredState.LAUNCHED: "launched on", DesiredState.LOADED: "loaded on"}.get(
                    desired
                )
                click.echo(f"Unit {name} {verb} {where}" if verb else f"Unit {name} inactive")
            elif note.startswith("failed"):
                raise click.ClickException(f"unit {name} {note}")
            else:
                if last_note.get(name) != note:
                    click.echo(f"{name}: {note}", err=True)
                    last_note[name] = note
                still.append(name)
        pending = still
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise click.ClickException(
                f"timed out after {timeout:.0f}s waiting for {', '.join(pending[:5])} "
                f"to be {desired} (the cluster keeps trying; see `vulcano status`)"
            )
        time.sleep(policy.UNIT_COMMAND_POLL_INTERVAL)
        sys.stderr.flush()
