"""Health checks added to units at runtime (`vulcano check add|list|remove`), and the
checks' results as the machines report them.

A runtime check is ``checks/<unit>/<name>`` (a CheckSpec), beside the unit file's own
Check= lines; the agents running the unit watch that prefix and change the running
instance's checks without restarting it. A check on a template (``web@.service``) applies
to each of its instances. The file's checks are the file's: they are neither replaced
nor removed here. Adding and removing are etcd transactions (create only if absent,
delete only if present), so two operators racing cannot lose a check silently.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from container.services.cluster import Cluster
from container.services.errors import CheckConflict, CheckNotFound, UnitNotFound
from container.services.machines import by_id
from vulcano import unitnames
from vulcano.endpoints import (
    MAX_CHECKS,
    CheckResult,
    CheckSpec,
    CheckStates,
    parse_check,
    service_options,
    valid_check_name,
)
from vulcano.errors import UnitFileError, VulcanoError
from vulcano.records import Machine
from vulcano.registry import Registry
from vulcano.units import parse

FILE = "file"
RUNTIME = "runtime"


@dataclass(frozen=True)
class CheckRow:
    """One check of one unit, as one machine reports it (``machine_id`` None: none does)."""

    unit: str
    name: str
    spec: CheckSpec
    source: str  # FILE or RUNTIME
    machine_id: str | None = None
    machine: Machine | None = None
    result: CheckResult | None = None


def add_check(cluster: Cluster, unit: str, line: str, name: str | None = None) -> CheckSpec:
    """Add a check (a Check= line's value) to a submitted unit or template; the check."""
    spec = parse_check(line, "check:")
    if name is not None:
        if not valid_check_name(name):
            raise UnitFileError(
                f"--name wants letters, digits, '_', '.', '-' (at most 63), got {name!r}"
            )
        if spec.name and spec.name != name:
            raise UnitFileError(f"check: name={spec.name} and --name {name} disagree")
        spec = replace(spec, name=name)
    spec = replace(spec, name=spec.id)
    cluster.audit_ready()
    with cluster.registry() as registry:
        declared = _file_checks(registry, unit)
        if spec.name in declared:
            raise CheckConflict(
                f"unit {unit} declares check {spec.name} in its file (Check=); "
                "give this one another --name"
            )
        runtime = _runtime(registry).get(unit, {})
        if len(declared) + len(runtime) >= MAX_CHECKS:
            raise CheckConflict(f"unit {unit} has {MAX_CHECKS} checks already")
        key = registry.ks.check(unit, spec.name)
        t = registry.client.transactions
        ok, _ = registry.client.transaction(
            compare=[t.version(key) == 0], success=[t.put(key, spec.to_json())], failure=[]
        )
        if not ok:
            raise CheckConflict(
                f"unit {unit} already has a check named {spec.name}; remove it first"
            )
    cluster.record("check add", unit, detail=f"{spec.name}: {spec.to_line()}")
    return spec


def remove_check(cluster: Cluster, unit: str, name: str) -> None:
    """Remove a check added at runtime; a check the unit file declares is refused."""
    cluster.audit_ready()
    with cluster.registry() as registry:
        declared = _file_checks(registry, unit)
        if name in declared:
            raise CheckConflict(
                f"check {name} of unit {unit} is declared in its unit file (Check=); "
                "only checks added with `check add` can be removed"
            )
        key = registry.ks.check(unit, name)
        t = registry.client.transactions
        ok, _ = registry.client.transaction(
            compare=[t.version(key) > 0], success=[t.delete(key)], failure=[]
        )
        if not ok:
            known = sorted(_runtime(registry).get(unit, {}))
            have = f" (checks added to it: {', '.join(known)})" if known else ""
            raise CheckNotFound(f"unit {unit} has no check named {name}{have}")
    cluster.record("check remove", unit, detail=name)


def list_checks(cluster: Cluster, unit: str | None = None) -> list[CheckRow]:
    """Every unit's checks (or ``unit``'s, with its instances' for a template), each with
    every machine's latest result."""
    with cluster.registry() as registry:
        specs = registry.specs()
        if unit is not None and unit not in specs:
            raise UnitNotFound(f"unit {unit} is not submitted")
        runtime = _runtime(registry)
        states = check_states(registry)
        machines = by_id(registry.machines())
        texts: dict[str, str | None] = {}
        rows: list[CheckRow] = []
        for name, spec in sorted(specs.items()):
            if unit is not None and name != unit and unitnames.parse_name(name).template != unit:
                continue
            if spec.hash not in texts:
                texts[spec.hash] = registry.text(spec.hash)
            checks = _effective(name, _declared(name, texts[spec.hash]), runtime)
            reports = {m: s for (u, m), s in states.items() if u == name}
            for cname, (cspec, source) in checks.items():
                if not reports:
                    rows.append(CheckRow(name, cname, cspec, source))
                for machine_id, st in sorted(reports.items()):
                    rows.append(
                        CheckRow(
                            name,
                            cname,
                            cspec,
                            source,
                            machine_id,
                            machines.get(machine_id),
                            st.checks.get(cname),
                        )
                    )
    return rows


def check_states(registry: Registry) -> dict[tuple[str, str], CheckStates]:
    """(unit, machine) -> that machine's check results for it, from check-states/."""
    out: dict[tuple[str, str], CheckStates] = {}
    for value, _ in registry.client.get_prefix(registry.ks.check_states):
        try:
            st = CheckStates.from_json(value)
        except (ValueError, KeyError, TypeError):
            continue  # an unreadable report says nothing
        out[(st.unit, st.machine_id)] = st
    return out


def _runtime(registry: Registry) -> dict[str, dict[str, CheckSpec]]:
    """unit -> name -> check, from checks/."""
    plen = len(registry.ks.checks)
    out: dict[str, dict[str, CheckSpec]] = {}
    for value, meta in registry.client.get_prefix(registry.ks.checks):
        unit, _, name = meta.key.decode()[plen:].partition("/")
        try:
            out.setdefault(unit, {})[name] = replace(CheckSpec.from_json(value), name=name)
        except (ValueError, KeyError, TypeError):
            continue
    return out


def _declared(name: str, text: str | None) -> dict[str, CheckSpec]:
    if text is None:
        return {}
    try:
        return {c.id: c for c in service_options(parse(text, name), name).checks}
    except VulcanoError:
        return {}


def _file_checks(registry: Registry, unit: str) -> dict[str, CheckSpec]:
    """The checks ``unit``'s file declares; UnitNotFound if it (or its template) is not
    submitted."""
    spec = registry.spec(unit)
    if spec is None:
        template = unitnames.parse_name(unit).template
        spec = registry.spec(template) if template else None
        if spec is None:
            hint = f" (nor its template {template})" if template else ""
            raise UnitNotFound(f"unit {unit} is not submitted{hint}")
    return _declared(unit, registry.text(spec.hash))


def _effective(
    name: str, declared: dict[str, CheckSpec], runtime: dict[str, dict[str, CheckSpec]]
) -> dict[str, tuple[CheckSpec, str]]:
    """What the agent runs for ``name`` (agent/services/component.py's order)."""
    out: dict[str, tuple[CheckSpec, str]] = {}
    template = unitnames.parse_name(name).template
    for source in (template, name):
        if source is not None:
            out.update({n: (c, RUNTIME) for n, c in runtime.get(source, {}).items()})
    out.update({n: (c, FILE) for n, c in declared.items()})
    return dict(sorted(out.items()))
