"""A ServicePlan written as a unit file: the container runtime's lines, [X-Vulcano]'s
Sandbox/Port/Check, [X-Fleet]'s placement, and the report rows of its dependencies.

The runtime lines, for ``docker`` (what CoreOS machines have) or ``podman``::

    ExecStartPre=-RT rm -f NAME
    ExecStart=RT run --rm --name NAME --network host [-e VAR…] [OPTIONS…] IMAGE [COMMAND…]
    ExecStop=RT stop [-t N] NAME

``--network host`` puts the container in its unit's namespace: the unit's sandbox on the
overlay when it has one. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import container.compose.quoting as quoting
from container.compose.deploy import STOP_MARGIN
from container.compose.errors import ComposeError
from container.compose.plan import ServicePlan
from container.compose.report import Report
from vulcano.endpoints import CheckSpec
from vulcano.unitnames import parse_name

RUNTIMES = ("docker", "podman")


@dataclass(frozen=True)
class Runtime:
    """The container runtime's binary, with any options of its own and of ``run``."""

    name: str = "docker"
    options: tuple[str, ...] = ()  # right after the binary: podman --runtime runc …
    run_options: tuple[str, ...] = ()  # after `run`: --ulimit …

    def argv(self, *words: str) -> list[str]:
        return [self.name, *self.options, *words]


@dataclass(frozen=True)
class RenderedUnit:
    name: str  # the file's name: NAME.service or NAME@.service
    text: str
    starts: tuple[str, ...]  # the units to start: itself, or the template's instances


class Renderer:
    def __init__(
        self,
        plans: Mapping[str, ServicePlan],
        project: str,
        runtime: Runtime,
        addresses: Mapping[str, str],
    ) -> None:
        if runtime.name not in RUNTIMES:
            raise ComposeError("--runtime", f"wants one of {', '.join(RUNTIMES)}")
        self.plans = plans
        self.project = project
        self.runtime = runtime
        self.addresses = addresses

    def base(self, service: str) -> str:
        return f"{self.project}-{service}" if self.project else service

    def is_template(self, service: str) -> bool:
        return self.plans[service].replicas > 1

    def unit_name(self, service: str) -> str:
        base = self.base(service)
        return f"{base}@.service" if self.is_template(service) else f"{base}.service"

    def container(self, service: str) -> str:
        plan = self.plans[service]
        if plan.container_name:
            return plan.container_name
        if self.is_template(service):
            return f"{self.base(service)}-{quoting.INSTANCE}"
        return self.base(service)

    def starts(self, service: str) -> tuple[str, ...]:
        if not self.is_template(service):
            return (self.unit_name(service),)
        base = self.base(service)
        return tuple(f"{base}@{i}.service" for i in range(1, self.plans[service].replicas + 1))

    def unit(self, plan: ServicePlan, report: Report) -> RenderedUnit:
        key = f"services.{plan.name}"
        name = self.unit_name(plan.name)
        try:
            parse_name(name)
        except ValueError as exc:
            raise ComposeError(key, f"cannot be a unit name: {exc}") from None
        colocated = self._dependencies(plan, report)
        if plan.network_of and plan.network_of not in colocated:
            other = self.plans[plan.network_of]
            if any(p.replicas > 1 or p.global_ for p in (plan, other)):
                raise ComposeError(
                    f"{key}.network_mode",
                    f"service:{plan.network_of} wants one machine for both, but one has replicas",
                )
            colocated.append(plan.network_of)
        unit_lines = [f"Description={self.project or 'compose'} service {plan.name} ({plan.image})"]
        for dep in colocated:
            unit_lines += [f"After={self.unit_name(dep)}", f"Requires={self.unit_name(dep)}"]
        service = [
            f"Environment={quoting.environment_value(k, v, f'{key}.environment')}"
            for k, v in plan.environment.items()
        ]
        container = self.container(plan.name)
        rm = self.runtime.argv("rm", "-f", container)
        stop = self.runtime.argv("stop", *self._stop_timeout(plan), container)
        service += [
            f"ExecStartPre=-{quoting.exec_line(rm, key)}",
            f"ExecStart={quoting.exec_line(self._run_argv(plan, container), key)}",
            f"ExecStop={quoting.exec_line(stop, key)}",
        ]
        service += [f"{k}={v}" for k, v in plan.service_lines]
        if plan.stop_seconds is not None:
            service.append(f"TimeoutStopSec={max(1, round(plan.stop_seconds)) + STOP_MARGIN}")
        vulcano = ["Sandbox=true"] if plan.sandbox and not plan.network_of else []
        vulcano += [f"Port={p.to_line()}" for p in plan.ports]
        if plan.health:
            target = tuple(self.runtime.argv("exec", container, *plan.health.command))
            for word in target:
                quoting.exec_word(word, f"{key}.healthcheck.test")  # refuses control characters
            target = tuple(w.replace(quoting.INSTANCE, "%i") for w in target)
            check = CheckSpec(
                "exec",
                target,
                interval=plan.health.interval,
                timeout=plan.health.timeout,
                failing=plan.health.failing,
            )
            vulcano.append(f"Check={check.to_line()}")
        fleet = [f"MachineOf={self.unit_name(d)}" for d in colocated]
        if self.is_template(plan.name):
            fleet.append(f"Conflicts={self.base(plan.name)}@*.service")
        if plan.global_:
            fleet.append("Global=true")
        fleet += [f"{k}={v}" for k, v in plan.fleet_lines]
        sections = [
            ("Unit", unit_lines),
            ("Service", service),
            ("X-Vulcano", vulcano),
            ("X-Fleet", fleet),
        ]
        text = (
            "\n\n".join(f"[{title}]\n" + "\n".join(lines) for title, lines in sections if lines)
            + "\n"
        )
        return RenderedUnit(name, text, self.starts(plan.name))

    def _stop_timeout(self, plan: ServicePlan) -> list[str]:
        if plan.stop_seconds is None:
            return []
        return ["-t", str(max(1, round(plan.stop_seconds)))]

    def _run_argv(self, plan: ServicePlan, container: str) -> list[str]:
        argv = self.runtime.argv("run", "--rm", "--name", container)
        if plan.network_of:
            argv += ["--network", f"container:{self.container(plan.network_of)}"]
        else:
            argv += ["--network", plan.network]
        argv += list(self.runtime.run_options)
        for dep in plan.depends_on:
            address = self.addresses.get(dep)
            if address and not plan.network_of:
                argv += ["--add-host", f"{dep}:{address}"]
        for name in plan.environment:
            argv += ["-e", name]
        argv += plan.run_options
        entry = plan.entrypoint
        if entry is not None:
            argv += ["--entrypoint", entry[0] if entry else ""]
        argv.append(plan.image)
        if entry:
            argv += entry[1:]
        argv += plan.command or []
        return argv

    def _dependencies(self, plan: ServicePlan, report: Report) -> list[str]:
        """The dependencies co-located with ``plan``; a report row for each dependency."""
        colocated = []
        for dep, condition in plan.depends_on.items():
            key = plan.depends_keys[dep]
            other = self.plans[dep]
            shared = sorted(plan.named_volumes & other.named_volumes)
            why = f"shares the volume {', '.join(shared)}" if shared else ""
            if plan.network_of == dep:
                why = "uses its network"
            spread = [
                n for n, p in ((plan.name, plan), (dep, other)) if p.replicas > 1 or p.global_
            ]
            address = self.addresses.get(dep)
            reach = (
                f"--add-host {dep}:{address}"
                if address
                else f"--add-host {dep}:ADDRESS at compose up (its address is known once it runs)"
            )
            wait = {
                "service_started": "",
                "service_healthy": "; compose up waits for it to be launched, not healthy",
                "service_completed_successfully": "; compose up waits for it to be launched, "
                "not for it to finish",
            }[condition]
            if why and not spread:
                colocated.append(dep)
                detail = f"MachineOf={self.unit_name(dep)}, After= and Requires= ({why}){wait}"
            elif why:
                detail = (
                    f"not co-located though it {why}: {' and '.join(spread)} runs on several "
                    f"machines; {reach}{wait}"
                )
                if plan.network_of == dep:
                    raise ComposeError(
                        f"services.{plan.name}.network_mode",
                        f"service:{dep} wants one machine, but {' and '.join(spread)} has replicas",
                    )
            else:
                detail = f"compose up starts it first; reached over the overlay: {reach}{wait}"
            if wait or (why and spread) or (not why and not address):
                report.approximated(key, detail)
            else:
                report.converted(key, detail)
        return colocated
