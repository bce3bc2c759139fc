"""A whole Compose file converted: its top-level keys, each service's unit, the order
they start in, and the report.

How services find each other. Every unit has its own address on the overlay
(``Sandbox=true``; the container runs with ``--network host`` in that namespace), so a
dependency is reachable from any machine: it is not co-located, and its name resolves
through ``--add-host NAME:ADDRESS``, the address filled in by ``compose up`` once the
dependency is launched (``convert`` alone cannot know it, and says so). systemd's
``After=``/``Requires=`` mean something only on one machine, so ``compose up`` starts the
services level by level in dependency order instead. A dependency is co-located
(``MachineOf=`` plus ``After=``/``Requires=``) only when the two must share a machine:
they mount the same named volume (a volume lives on one machine), or one uses the
other's network (``network_mode: service:NAME``). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import container.compose.render as render
import container.compose.values as values
from container.compose.errors import ComposeError
from container.compose.plan import Context, ServicePlan
from container.compose.report import Report, Row
from container.compose.service import plan_service
from vulcano.errors import UnitFileError
from vulcano.units import load as load_unit

_EXTENSION = "an extension field: used through YAML anchors, nothing of its own"
_VERSION_RE = re.compile(r"[23](\.\d+)?")
_PROJECT_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")


@dataclass(frozen=True)
class UnitFileOut:
    name: str
    text: str


@dataclass(frozen=True)
class ServiceUnits:
    """A service's unit file and the units to start for it (its instances, if a template)."""

    service: str
    unit: str
    starts: tuple[str, ...]
    depends_on: tuple[str, ...]


@dataclass(frozen=True)
class Conversion:
    project: str
    files: tuple[UnitFileOut, ...]
    services: tuple[ServiceUnits, ...]
    levels: tuple[tuple[str, ...], ...]  # services in start order: each after the ones before
    report: tuple[Row, ...]

    def service(self, name: str) -> ServiceUnits:
        return next(s for s in self.services if s.service == name)


@dataclass(frozen=True)
class Options:
    project: str = ""
    runtime: render.Runtime = field(default_factory=render.Runtime)
    base_dir: Path = Path("/")
    files: Mapping[str, str] = field(default_factory=dict)  # env_file path -> text
    addresses: Mapping[str, str] = field(default_factory=dict)  # service -> its address
    unset: Mapping[str, list[str]] = field(default_factory=dict)  # variables interpolated empty
    variables: Mapping[str, str] = field(default_factory=dict)  # the environment, then .env


def project_name(given: str, key: str = "--prefix") -> str:
    name = given.strip().lower()
    if not _PROJECT_RE.fullmatch(name):
        raise ComposeError(
            key, f"a project name wants lowercase letters, digits, '_', '-': {given!r}"
        )
    return name


def convert(data: dict[str, Any], options: Options) -> Conversion:
    report = Report()
    _version(data, report)
    project = options.project
    if "name" in data:
        named = project_name(values.text(data["name"], "name"), "name")
        if project:
            report.approximated("name", f"--prefix {project} given: {named} is not used")
        else:
            project = named
            report.converted("name", f"units named {named}-SERVICE")
    services = data.get("services")
    if services is None:
        raise ComposeError("services", "missing: a Compose file names its services under services:")
    services = values.mapping(services, "services")
    if not services:
        raise ComposeError("services", "no services")
    volumes = _volumes(data.get("volumes"), project, report)
    ctx = Context(
        project,
        options.base_dir,
        frozenset(services),
        volumes,
        dict(options.files),
        dict(options.variables),
    )
    plans = {name: plan_service(name, svc, ctx, report) for name, svc in services.items()}
    report.converted("services", f"{len(plans)} service(s), a unit each")
    for key, value in data.items():
        if key in ("version", "name", "services", "volumes"):
            continue
        if key.startswith("x-"):
            report.approximated(key, _EXTENSION)
        elif key == "networks":
            for net in values.mapping(value or {}, key):
                report.approximated(
                    f"networks.{net}", "the cluster's one overlay: no isolation between networks"
                )
        elif key == "include":
            report.not_expressible(key, "other Compose files are not read: convert each one")
        elif key in ("secrets", "configs"):
            for item in values.mapping(value or {}, key):
                report.not_expressible(f"{key}.{item}", "the cluster has no store for them")
        else:
            report.not_expressible(key, "not a top-level Compose key this converter knows")
    for key in data:
        if not report.covers(key):
            report.converted(key, "empty: nothing to convert")
    for variable, where in options.unset.items():
        report.approximated(
            f"${{{variable}}}", f"not set: an empty string in {', '.join(where[:3])}"
        )
    levels = _levels(plans)
    rendered = render.Renderer(plans, project, options.runtime, options.addresses)
    files, units = [], []
    for name, plan in plans.items():
        unit = rendered.unit(plan, report)
        try:
            load_unit(unit.text, unit.name)
        except UnitFileError as exc:  # a converter bug, or a value the unit cannot hold
            raise ComposeError(f"services.{name}", f"the unit does not load: {exc}") from None
        files.append(UnitFileOut(unit.name, unit.text))
        units.append(ServiceUnits(name, unit.name, unit.starts, tuple(plan.depends_on)))
        report.converted(f"services.{name}", " ".join(unit.starts) if unit.starts else unit.name)
    return Conversion(project, tuple(files), tuple(units), levels, report.rows())


def _version(data: dict[str, Any], report: Report) -> None:
    if "version" not in data:
        if "services" not in data and any(
            isinstance(v, dict) and "image" in v for v in data.values()
        ):
            raise ComposeError(
                "services",
                "missing; this looks like Compose file format 1 (services at the top level), "
                "which is not supported: put them under services:",
            )
        return
    version = values.scalar_text(data["version"])
    if not _VERSION_RE.fullmatch(version):
        raise ComposeError("version", f"wants 2, 2.x, 3 or 3.x (or no version), got {version!r}")
    report.converted("version", f"Compose file format {version}: read as the Compose Specification")


def _volumes(value: Any, project: str, report: Report) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, spec in values.mapping(value or {}, "volumes").items():
        key = f"volumes.{name}"
        spec = values.mapping(spec or {}, key)
        runtime_name = f"{project}_{name}" if project else name
        if spec.get("external"):
            runtime_name = values.text(spec.get("name", name), f"{key}.name")
        elif "name" in spec:
            runtime_name = values.text(spec["name"], f"{key}.name")
        for sub, v in spec.items():
            skey = f"{key}.{sub}"
            if sub == "name":
                report.converted(skey, f"the runtime's volume {runtime_name}")
            elif sub == "external":
                report.converted(skey, "used as it is, not made" if v else "made by the runtime")
            elif sub == "driver" and v == "local":
                report.converted(skey, "the runtime's local volumes")
            else:
                report.not_expressible(skey, "volumes are the runtime's local ones on each machine")
        out[name] = runtime_name
        report.approximated(
            key,
            f"the runtime's volume {runtime_name}: one per machine, not shared between machines",
        )
    return out


def _levels(plans: dict[str, ServicePlan]) -> tuple[tuple[str, ...], ...]:
    """Services grouped so each comes after everything it depends on."""
    placed: set[str] = set()
    levels: list[tuple[str, ...]] = []
    pending = list(plans)
    while pending:
        level = tuple(n for n in pending if all(d in placed for d in _needs(plans[n])))
        if not level:
            name = pending[0]
            raise ComposeError(
                f"services.{name}.depends_on",
                f"a dependency cycle among {', '.join(pending)}",
            )
        levels.append(level)
        placed.update(level)
        pending = [n for n in pending if n not in placed]
    return tuple(levels)


def _needs(plan: ServicePlan) -> list[str]:
    return [*plan.depends_on, *([plan.network_of] if plan.network_of else [])]
