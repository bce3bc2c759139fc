"""Where and how a service runs: depends_on, deploy (replicas, placement, resources,
restart_policy), v2's scale, restart, and healthcheck. Pure: no I/O."""

from __future__ import annotations

from typing import Any

import container.compose.values as values
from container.compose.errors import ComposeError
from container.compose.plan import Context, HealthCheck, ServicePlan
from container.compose.report import Report
from vulcano import endpoints

MAX_REPLICAS = 100
STOP_MARGIN = 5  # seconds TimeoutStopSec= gives the runtime beyond the container's grace
_RESTARTS = {"no": "no", "always": "always", "on-failure": "on-failure", "unless-stopped": "always"}
_CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")
_POLICY_CONDITIONS = {"none": "no", "on-failure": "on-failure", "any": "always"}
# Compose's healthcheck defaults (docker's): 30 s interval and timeout, 3 retries.
_HEALTH_DEFAULTS = {"interval": 30.0, "timeout": 30.0, "retries": 3}


def depends_on(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    found: dict[str, str] = {}
    if isinstance(v, list):
        for i, name in enumerate(v):
            if not isinstance(name, str):
                raise ComposeError(f"{at}[{i}]", "wants a service name")
            found[name] = "service_started"
            plan.depends_keys[name] = f"{at}[{i}]"
    elif isinstance(v, dict):
        for name, spec in v.items():
            spec = values.mapping(spec or {}, f"{at}.{name}")
            condition = str(spec.get("condition", "service_started"))
            if condition not in _CONDITIONS:
                raise ComposeError(
                    f"{at}.{name}.condition", f"wants one of {', '.join(_CONDITIONS)}"
                )
            found[name] = condition
            plan.depends_keys[name] = f"{at}.{name}"
    else:
        raise ComposeError(at, "wants a list of services or a mapping of them")
    for name in found:
        if name not in ctx.services:
            raise ComposeError(f"{at}.{name}", f"no service {name!r} in this file")
        if name == plan.name:
            raise ComposeError(f"{at}.{name}", "a service cannot depend on itself")
    plan.depends_on = found
    if not found:
        report.converted(at, "empty: no dependencies")
    # the rows are written by the project, which knows where each dependency runs


def scale(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    plan.replicas = values.count(v, at, 1, MAX_REPLICAS)
    report.converted(at, _replicas_detail(plan.replicas))


def _replicas_detail(n: int) -> str:
    if n == 1:
        return "one unit"
    return f"a template NAME@.service, instances @1..@{n}, Conflicts=NAME@*.service"


def restart(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    policy = values.text(v, at)
    base, _, tries = policy.partition(":")
    if base not in _RESTARTS or (tries and base != "on-failure"):
        raise ComposeError(
            at, f"wants no, always, on-failure[:N] or unless-stopped, got {policy!r}"
        )
    plan.service_lines.append(("Restart", _RESTARTS[base]))
    if tries:
        report.approximated(at, f"Restart=on-failure; the limit of {tries} tries is not kept")
    else:
        report.converted(at, f"Restart={_RESTARTS[base]}")


def deploy(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    for k, sub in values.mapping(v, at).items():
        key = f"{at}.{k}"
        if k == "replicas":
            plan.replicas = values.count(sub, key, 1, MAX_REPLICAS)
            report.converted(key, _replicas_detail(plan.replicas))
        elif k == "mode":
            if sub == "global":
                plan.global_ = True
                report.converted(key, "Global=true: one on every machine")
            elif sub == "replicated":
                report.converted(key, "replicas as deploy.replicas says")
            else:
                raise ComposeError(key, f"wants replicated or global, got {sub!r}")
        elif k == "placement":
            _placement(plan, sub, key, report)
        elif k == "resources":
            _resources(plan, sub, key, report)
        elif k == "restart_policy":
            _restart_policy(plan, sub, key, report)
        elif k == "labels":
            report.not_expressible(key, "labels of the deployment, not the container: no place")
        elif k in ("update_config", "rollback_config"):
            report.not_expressible(key, "no rolling updates: destroy and start the units again")
        elif k == "endpoint_mode":
            report.not_expressible(key, "no virtual IP: each instance has its own address")
        else:
            report.not_expressible(key, "not a deploy key this converter knows")
    if plan.global_ and plan.replicas > 1:
        raise ComposeError(f"{at}.replicas", "a global service has no replica count")


def _placement(plan: ServicePlan, v: Any, at: str, report: Report) -> None:
    for k, sub in values.mapping(v, at).items():
        key = f"{at}.{k}"
        if k == "constraints":
            for i, c in enumerate(values.names_list(sub, key)):
                left, op, right = _constraint(c)
                ckey = f"{key}[{i}]"
                if op == "==" and left.startswith("node.labels."):
                    line = f"{left.removeprefix('node.labels.')}={right}"
                    plan.fleet_lines.append(("MachineMetadata", line))
                    report.converted(ckey, f"MachineMetadata={line}")
                else:
                    report.not_expressible(
                        ckey, f"{c!r}: only node.labels.KEY == VALUE maps (to MachineMetadata=)"
                    )
        elif k == "max_replicas_per_node" and sub == 1:
            report.converted(key, "Conflicts=NAME@*.service: one replica a machine")
        else:
            report.not_expressible(key, "the scheduler places least-loaded; no such preference")


def _constraint(text: str) -> tuple[str, str, str]:
    for op in ("==", "!="):
        if op in text:
            left, _, right = text.partition(op)
            return left.strip(), op, right.strip()
    return text.strip(), "", ""


def _resources(plan: ServicePlan, v: Any, at: str, report: Report) -> None:
    for k, sub in values.mapping(v, at).items():
        key = f"{at}.{k}"
        if k != "limits":
            report.not_expressible(key, "the scheduler does not place by resources")
            continue
        for name, limit in values.mapping(sub, key).items():
            lkey = f"{key}.{name}"
            flag = {"cpus": "--cpus", "memory": "--memory", "pids": "--pids-limit"}.get(name)
            if flag is None:
                report.not_expressible(lkey, "no runtime flag for this limit")
                continue
            plan.run_options += [flag, values.text(limit, lkey)]
            report.converted(lkey, f"ExecStart=… {flag} {limit}")


def _restart_policy(plan: ServicePlan, v: Any, at: str, report: Report) -> None:
    for k, sub in values.mapping(v, at).items():
        key = f"{at}.{k}"
        if k == "condition":
            if sub not in _POLICY_CONDITIONS:
                raise ComposeError(key, f"wants none, on-failure or any, got {sub!r}")
            plan.service_lines.append(("Restart", _POLICY_CONDITIONS[sub]))
            report.converted(key, f"Restart={_POLICY_CONDITIONS[sub]}")
        elif k == "delay":
            seconds = values.duration(sub, key)
            plan.service_lines.append(("RestartSec", endpoints.format_duration(seconds)))
            report.converted(key, f"RestartSec={endpoints.format_duration(seconds)}")
        else:
            report.not_expressible(key, "systemd restarts without a count or a window here")


def healthcheck(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    hc = values.mapping(v, at)
    settings = dict(_HEALTH_DEFAULTS)
    command: tuple[str, ...] | None = None
    disabled = hc.get("disable") is True
    for k, sub in hc.items():
        key = f"{at}.{k}"
        if k == "test":
            command = _health_command(sub, key)
            if command == ():
                disabled = True
                report.converted(key, "NONE: no check")
            elif disabled:
                report.converted(key, "disable: true: no check")
            else:
                report.converted(
                    key, "Check=exec … -- RUNTIME exec CONTAINER " + " ".join(command)[:50]
                )
        elif k in ("interval", "timeout"):
            settings[k] = values.duration(sub, key)
        elif k == "retries":
            settings[k] = values.count(sub, key, 1, endpoints.MAX_THRESHOLD)
            report.converted(key, f"Check=exec failing={settings[k]}")
        elif k == "disable":
            report.converted(key, "no check" if sub is True else "false: checked")
        elif k in ("start_period", "start_interval"):
            report.not_expressible(
                key, "a check has no start period: failures count from the start"
            )
        else:
            report.not_expressible(key, "not a healthcheck key this converter knows")
    interval = min(max(settings["interval"], endpoints.MIN_INTERVAL), endpoints.MAX_INTERVAL)
    timeout = min(max(settings["timeout"], 0.001), interval)
    for k, got in (("interval", interval), ("timeout", timeout)):
        if k not in hc:
            continue
        line = f"Check=exec {k}={endpoints.format_duration(got)}"
        if got != settings[k]:
            bound = "the check's bounds" if k == "interval" else "at most the interval"
            report.approximated(f"{at}.{k}", f"{line} ({bound})")
        else:
            report.converted(f"{at}.{k}", line)
    if not disabled and command is not None:
        plan.health = HealthCheck(command, interval, timeout, int(settings["retries"]))


def _health_command(v: Any, at: str) -> tuple[str, ...]:
    """The command to exec in the container; () for NONE."""
    if isinstance(v, str):
        return ("/bin/sh", "-c", v)
    words = values.words(v, at)
    if not words:
        raise ComposeError(at, "an empty test")
    head, rest = words[0], words[1:]
    if head == "NONE":
        return ()
    if head == "CMD" and rest:
        return tuple(rest)
    if head == "CMD-SHELL" and len(rest) == 1:
        return ("/bin/sh", "-c", rest[0])
    raise ComposeError(at, "wants [CMD, ARGS...], [CMD-SHELL, COMMAND], [NONE] or a string")
