"""A unit's [Service] section as the built-in runner's supervisor runs it (pure parsing).

Exec*= lines with systemd's prefixes and variable rules, Environment=/EnvironmentFile=
(the only file read), WorkingDirectory=, Type=, RemainAfterExit=, Restart=/RestartSec=,
TimeoutStopSec=, with specifiers expanded.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import policy
from vulcano import unitnames, units

_PREFIX_CHARS = "-@:+!"


@dataclass
class Command:
    argv: list[str]
    ignore_failure: bool = False


@dataclass
class ServiceConfig:
    type: str = "simple"
    remain_after_exit: bool = False
    start_pre: list[Command] = field(default_factory=list)
    start: list[Command] = field(default_factory=list)
    start_post: list[Command] = field(default_factory=list)
    stop: list[Command] = field(default_factory=list)
    stop_post: list[Command] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    working_directory: str | None = None
    working_directory_optional: bool = False
    restart: str = "no"
    restart_sec: float = policy.UNIT_RESTART_SEC
    timeout_stop: float = policy.UNIT_STOP_TIMEOUT


def parse_seconds(value: str, default: float) -> float:
    """systemd time spans: "5", "5s", "500ms", "1min", "1min 30s", "infinity"."""
    v = value.strip().lower()
    if not v:
        return default
    if v == "infinity":
        return 365 * 86400.0
    total = 0.0
    units_ = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "": 1}
    for num, unit in re.findall(r"([0-9.]+)\s*([a-z]*)", v):
        if unit not in units_:
            return default
        total += float(num) * units_[unit]
    return total


def expand_env(argv: list[str], env: dict[str, str]) -> list[str]:
    """systemd's Exec variable rules: ${VAR} inline, $VAR alone splits, $$ is a '$'."""
    out: list[str] = []
    for word in argv:
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if m:
            out.extend(env.get(m.group(1), "").split())
            continue

        def sub(g: re.Match[str]) -> str:
            return "$" if g.group(0) == "$$" else env.get(g.group(1), "")

        out.append(re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}", sub, word))
    return out


def _command(value: str, name: str, ctx: dict[str, Any]) -> Command | None:
    ignore = False
    while value and value[0] in _PREFIX_CHARS:
        ignore = ignore or value[0] == "-"
        value = value[1:]
    value = unitnames.expand_specifiers(
        value, name, hostname=ctx.get("hostname", ""), machine_id=ctx.get("machine_id", "")
    )
    try:
        argv = shlex.split(value)
    except ValueError:
        return None
    return Command(argv, ignore) if argv else None


def _env_file(path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        k, v = line.split("=", 1)
        v = v.strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
            v = v[1:-1]
        out[k.strip().removeprefix("export ").strip()] = v
    return out


def service_config(text: str, name: str, ctx: dict[str, Any]) -> ServiceConfig:
    """A unit file's [Service] settings, specifiers expanded with ``ctx``."""
    unit = units.parse(text, name)
    cfg = ServiceConfig()
    cfg.type = (unit.value("Service", "Type") or "simple").strip()
    cfg.remain_after_exit = (
        units.parse_bool(unit.value("Service", "RemainAfterExit") or "no") or False
    )
    for attr, key in [
        ("start_pre", "ExecStartPre"),
        ("start", "ExecStart"),
        ("start_post", "ExecStartPost"),
        ("stop", "ExecStop"),
        ("stop_post", "ExecStopPost"),
    ]:
        cmds = [_command(v, name, ctx) for v in unit.values("Service", key)]
        setattr(cfg, attr, [c for c in cmds if c is not None])
    env: dict[str, str] = {}
    for path in unit.values("Service", "EnvironmentFile"):
        optional = path.startswith("-")
        path = unitnames.expand_specifiers(path.lstrip("-"), name, ctx.get("hostname", ""))
        try:
            env.update(_env_file(path))
        except OSError:
            if not optional:
                raise
    for value in unit.values("Service", "Environment"):
        value = unitnames.expand_specifiers(
            value, name, ctx.get("hostname", ""), ctx.get("machine_id", "")
        )
        for item in shlex.split(value):
            if "=" in item:
                k, v = item.split("=", 1)
                env[k] = v
    cfg.environment = env
    wd = unit.value("Service", "WorkingDirectory")
    if wd:
        cfg.working_directory_optional = wd.startswith("-")
        wd = unitnames.expand_specifiers(wd.lstrip("-"), name, ctx.get("hostname", ""))
        cfg.working_directory = os.path.expanduser(wd)
    cfg.restart = (unit.value("Service", "Restart") or "no").strip()
    cfg.restart_sec = parse_seconds(unit.value("Service", "RestartSec") or "", cfg.restart_sec)
    cfg.timeout_stop = parse_seconds(
        unit.value("Service", "TimeoutStopSec") or unit.value("Service", "TimeoutSec") or "",
        cfg.timeout_stop,
    )
    return cfg
