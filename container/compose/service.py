"""One Compose service read into a ServicePlan, every key of it reported.

The keys are dispatched to handlers (here, in `mounts` and in `deploy`); a key no handler
knows is reported as not expressible, with why: NOT_EXPRESSIBLE says it for the Compose
keys that have no counterpart on the cluster. Pure: env_file contents come in the Context.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import container.compose.deploy as deploy
import container.compose.mounts as mounts
import container.compose.values as values
from container.compose.errors import ComposeError
from container.compose.interpolate import read_dotenv
from container.compose.plan import Context, ServicePlan
from container.compose.report import Report

Handler = Callable[[ServicePlan, Any, str, Context, Report], None]

_SERVICE_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_RUNTIME_FLAGS = {
    # key: (flag, what it is)
    "hostname": "--hostname",
    "working_dir": "--workdir",
    "user": "--user",
    "stop_signal": "--stop-signal",
    "shm_size": "--shm-size",
    "mem_limit": "--memory",
    "memswap_limit": "--memory-swap",
    "cpus": "--cpus",
    "pids_limit": "--pids-limit",
    "pull_policy": "--pull",
}
_RUNTIME_SWITCHES = {"init": "--init", "read_only": "--read-only"}
_RUNTIME_LISTS = {
    "cap_add": "--cap-add",
    "cap_drop": "--cap-drop",
    "tmpfs": "--tmpfs",
    "group_add": "--group-add",
}
_EXTENSION = "an extension field: used through YAML anchors, nothing of its own"
NOT_EXPRESSIBLE = {
    "build": "the cluster builds no images: the image named by image: is run as it is",
    "links": "legacy container links; units reach each other by address on the overlay "
    "(depends_on names resolve at compose up)",
    "external_links": "links to containers outside the project do not exist on the cluster",
    "privileged": "a unit may land on any machine; Vulcano does not hand it the whole host",
    "devices": "host devices differ between machines; a unit may land on any of them",
    "device_cgroup_rules": "host devices differ between machines",
    "secrets": "the cluster has no secret store; use an env_file or a bind mount",
    "configs": "the cluster has no config store; use a bind mount",
    "dns": "the container uses its unit's network namespace (--network host) and its resolver",
    "dns_search": "the container uses its unit's network namespace and its resolver",
    "dns_opt": "the container uses its unit's network namespace and its resolver",
    "mac_address": "the sandbox's interface is made by the agent",
    "ipc": "namespaces are not shared between units",
    "pid": "namespaces are not shared between units",
    "uts": "namespaces are not shared between units",
    "userns_mode": "namespaces are not shared between units",
    "cgroup_parent": "the agent places the unit's processes",
    "cgroup": "the agent places the unit's processes",
    "security_opt": "security profiles differ between machines",
    "sysctls": "the unit's network namespace is the agent's; its sysctls are not the container's",
    "isolation": "Windows isolation has no meaning on Linux machines",
    "platform": "machines run their own architecture; MachineMetadata= can pin one",
    "extends": "extends is not followed; write the service out in full",
    "tty": "a unit has no terminal",
    "stdin_open": "a unit has no input",
    "cpu_shares": "CPU weights are not passed (deploy.resources.limits.cpus is)",
    "cpu_quota": "CPU quotas are not passed (cpus is)",
    "cpu_period": "CPU periods are not passed (cpus is)",
    "cpuset": "CPU sets differ between machines",
    "cpu_count": "not passed (cpus is)",
    "cpu_percent": "not passed (cpus is)",
    "cpu_rt_runtime": "real-time CPU scheduling is not passed",
    "cpu_rt_period": "real-time CPU scheduling is not passed",
    "mem_reservation": "the scheduler does not place by memory",
    "mem_swappiness": "not passed",
    "oom_kill_disable": "not passed",
    "oom_score_adj": "not passed",
    "blkio_config": "block IO weights differ between machines",
    "storage_opt": "storage drivers differ between machines",
    "volumes_from": "volumes are not shared between units; use a named volume and depends_on",
    "develop": "compose watch is a development loop, not a deployment",
    "attach": "output goes to the unit's journal",
    "runtime": "the runtime is chosen by --runtime",
}


def plan_service(name: str, service: Any, ctx: Context, report: Report) -> ServicePlan:
    key = f"services.{name}"
    if not _SERVICE_NAME_RE.fullmatch(name):
        raise ComposeError(key, "a service name wants letters, digits, '_', '.', '-'")
    svc = values.mapping(service, key)
    if "image" not in svc:
        if "build" in svc:
            raise ComposeError(
                f"{key}.build",
                "a build-only service is not expressible: the cluster builds no images; "
                "build it, push it to a registry the machines reach, and give image:",
            )
        raise ComposeError(key, "no image: every service on the cluster runs an image")
    plan = ServicePlan(name)
    for k, v in svc.items():
        at = f"{key}.{k}"
        handler = HANDLERS.get(k)
        if handler is not None:
            handler(plan, v, at, ctx, report)
            if not report.covers(at) and k != "depends_on":
                report.converted(at, "empty: nothing to convert")
        elif k.startswith("x-"):
            report.approximated(at, _EXTENSION)
        elif k in NOT_EXPRESSIBLE:
            report.not_expressible(at, NOT_EXPRESSIBLE[k])
        else:
            report.not_expressible(at, "not a Compose service key this converter knows")
    if plan.container_name and (plan.replicas > 1 or plan.global_):
        raise ComposeError(
            f"{key}.container_name", "one container name cannot be given to several replicas"
        )
    return plan


def _image(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    plan.image = values.text(v, at)
    if not plan.image or plan.image.startswith("-"):
        raise ComposeError(at, f"not an image reference: {plan.image!r}")
    report.converted(at, f"ExecStart=… {plan.image}")


def _command(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    if v is None:
        report.converted(at, "null: the image's own command")
        return
    plan.command = values.words(v, at)
    report.converted(at, "ExecStart=… IMAGE " + " ".join(plan.command)[:60])


def _entrypoint(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    if v is None:
        report.converted(at, "null: the image's own entrypoint")
        return
    plan.entrypoint = values.words(v, at)
    report.converted(at, "ExecStart=… --entrypoint " + " ".join(plan.entrypoint)[:60])


def _environment(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    unset, given, passed = [], [], []
    for name, value in values.pairs(v, at):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name):
            raise ComposeError(f"{at}.{name}", "not a variable name")
        if value is None:  # Compose passes the variable of the environment it runs in
            if name not in ctx.variables:
                unset.append(name)
                continue
            value = ctx.variables[name]
            passed.append(name)
        plan.environment[name] = value
        given.append(name)
    detail = f"Environment= lines, passed with -e: {', '.join(given)[:60] or 'none'}"
    if passed:
        detail += f" ({', '.join(passed)[:40]} from the environment converting it)"
    if unset:
        report.approximated(at, f"{detail}; {', '.join(unset)} without a value: left unset")
    else:
        report.converted(at, detail)


def _env_file(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    entries: list[tuple[str, bool]] = []
    for i, item in enumerate(v if isinstance(v, list) else [v]):
        if isinstance(item, dict):
            path = values.text(item.get("path"), f"{at}[{i}].path")
            entries.append((path, bool(item.get("required", True))))
        else:
            entries.append((values.text(item, f"{at}[{i}]"), True))
    read, missing = [], []
    for path, required in entries:
        text = ctx.files.get(path)
        if text is None:
            if required:
                raise ComposeError(at, f"{path}: no such file beside the Compose file")
            missing.append(path)
            continue
        found = read_dotenv(text)
        for name, value in found.items():
            plan.environment.setdefault(name, value)  # environment: wins
        read.append(f"{path} ({len(found)})")
    detail = f"inlined as Environment= lines: {', '.join(read) or 'nothing'}"
    if missing:
        report.approximated(at, f"{detail}; optional {', '.join(missing)} not found")
    else:
        report.converted(at, detail)


def _flag(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    flag = _RUNTIME_FLAGS[at.rsplit(".", 1)[1]]
    value = values.text(v, at)
    plan.run_options += [flag, value]
    report.converted(at, f"ExecStart=… {flag} {value}")


def _switch(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    flag = _RUNTIME_SWITCHES[at.rsplit(".", 1)[1]]
    if not isinstance(v, bool):
        raise ComposeError(at, f"wants true or false, got {v!r}")
    if v:
        plan.run_options.append(flag)
    report.converted(at, f"ExecStart=… {flag}" if v else "false: nothing to pass")


def _flag_list(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    flag = _RUNTIME_LISTS[at.rsplit(".", 1)[1]]
    items = values.names_list(v, at)
    for item in items:
        plan.run_options += [flag, item]
    report.converted(at, "ExecStart=… " + " ".join(f"{flag} {i}" for i in items)[:80])


def _labels(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    found = values.pairs(v, at)
    for name, value in found:
        plan.run_options += ["--label", f"{name}={value or ''}"]
    report.converted(at, "ExecStart=… " + " ".join(f"--label {n}={v or ''}" for n, v in found)[:80])


def _extra_hosts(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    if isinstance(v, dict):
        found = [(k, values.scalar_text(x)) for k, x in v.items()]
    else:
        found = []
        for i, item in enumerate(values.names_list(v, at)):
            host, sep, addr = item.replace("=", ":", 1).partition(":")
            if not sep:
                raise ComposeError(f"{at}[{i}]", f"wants HOST:ADDRESS, got {item!r}")
            found.append((host, addr))
    for host, addr in found:
        plan.run_options += ["--add-host", f"{host}:{addr}"]
    report.converted(at, "ExecStart=… " + " ".join(f"--add-host {h}:{a}" for h, a in found)[:80])


def _container_name(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    name = values.text(v, at)
    if not _SERVICE_NAME_RE.fullmatch(name):
        raise ComposeError(at, f"not a container name: {name!r}")
    plan.container_name = name
    report.converted(at, f"--name {name} (ExecStartPre=, ExecStart=, ExecStop=)")


def _ulimits(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    for name, limit in values.mapping(v, at).items():
        if isinstance(limit, dict):
            soft = values.count(limit.get("soft"), f"{at}.{name}.soft", 0, 2**62)
            hard = values.count(limit.get("hard"), f"{at}.{name}.hard", 0, 2**62)
            plan.run_options += ["--ulimit", f"{name}={soft}:{hard}"]
        else:
            n = values.count(limit, f"{at}.{name}", 0, 2**62)
            plan.run_options += ["--ulimit", f"{name}={n}:{n}"]
    report.converted(at, "ExecStart=… --ulimit (at most the machine's own hard limits)")


def _network_mode(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    mode = values.text(v, at)
    if mode == "host":
        plan.sandbox = False
        report.converted(at, "no Sandbox=: the container runs in the machine's network")
    elif mode == "none":
        plan.sandbox = False
        plan.network = "none"
        report.converted(at, "ExecStart=… --network none, no Sandbox=")
    elif mode == "bridge":
        report.approximated(at, "Sandbox=true: the unit's own address on the overlay")
    elif mode.startswith("service:") and mode[8:] in ctx.services:
        plan.network_of = mode[8:]
        report.converted(
            at, f"ExecStart=… --network container:… and MachineOf= the unit of {mode[8:]}"
        )
    else:
        report.not_expressible(
            at, f"{mode!r}: only host, none, bridge and service:NAME have a counterpart"
        )


def _logging(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    report.approximated(at, "the container's output goes to the unit's journal (vulcano journal)")


def _networks(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    report.approximated(
        at, "every unit is on the cluster's one overlay: no per-network isolation or aliases"
    )


def _profiles(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    report.approximated(at, "profiles are not selected: every service is converted")


def _expose(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    mounts.expose(plan, v, at, report)


def _stop_grace(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    plan.stop_seconds = values.duration(v, at)
    n = max(1, round(plan.stop_seconds))
    report.converted(at, f"ExecStop=… stop -t {n}, TimeoutStopSec={n + deploy.STOP_MARGIN}")


HANDLERS: dict[str, Handler] = {
    "image": _image,
    "command": _command,
    "entrypoint": _entrypoint,
    "environment": _environment,
    "env_file": _env_file,
    "labels": _labels,
    "extra_hosts": _extra_hosts,
    "container_name": _container_name,
    "ulimits": _ulimits,
    "network_mode": _network_mode,
    "logging": _logging,
    "profiles": _profiles,
    "networks": _networks,
    "expose": _expose,
    "stop_grace_period": _stop_grace,
    "ports": mounts.ports,
    "volumes": mounts.volumes,
    "depends_on": deploy.depends_on,
    "deploy": deploy.deploy,
    "scale": deploy.scale,
    "restart": deploy.restart,
    "healthcheck": deploy.healthcheck,
    **dict.fromkeys(_RUNTIME_FLAGS, _flag),
    **dict.fromkeys(_RUNTIME_SWITCHES, _switch),
    **dict.fromkeys(_RUNTIME_LISTS, _flag_list),
}
