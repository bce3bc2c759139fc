"""A service's ports and volumes: Port= lines, runtime volumes and bind mounts.

Ports: the container runs in its unit's network namespace (``--network host`` inside the
unit's sandbox), so a container port is served at the unit's own address and becomes a
``Port=`` line; a published host port is not mapped (approximated: a balancer publishes
one). Volumes: a named volume is the runtime's volume ``<project>_<name>``, local to the
machine the unit runs on; a bind mount is kept, and flagged: its path must exist on
whatever machine the unit lands on. Pure: no I/O.
"""

from __future__ import annotations

import posixpath
from typing import Any

import container.compose.values as values
from container.compose.errors import ComposeError
from container.compose.plan import Context, ServicePlan
from container.compose.report import Report
from vulcano.endpoints import MAX_PORTS, PortSpec

_PROTOCOLS = ("tcp", "udp")


def _port_range(text: str, at: str) -> list[int]:
    low, dash, high = text.partition("-")
    try:
        first, last = int(low), int(high) if dash else int(low)
    except ValueError:
        raise ComposeError(at, f"not a port or a range of ports: {text!r}") from None
    if not 1 <= first <= last <= 65535:
        raise ComposeError(at, f"ports are 1-65535, got {text!r}")
    if last - first >= MAX_PORTS:
        raise ComposeError(at, f"a range of more than {MAX_PORTS} ports")
    return list(range(first, last + 1))


def _add_ports(plan: ServicePlan, ports: list[int], protocol: str, at: str) -> list[str]:
    lines = []
    for port in ports:
        spec = PortSpec(port, protocol)
        if spec not in plan.ports:
            plan.ports.append(spec)
        lines.append(f"Port={spec.to_line()}")
    if len(plan.ports) > MAX_PORTS:
        raise ComposeError(at, f"more than {MAX_PORTS} ports in one service")
    return lines


def _short_port(entry: str, at: str) -> tuple[list[int], str, str, str]:
    """(container ports, protocol, published, host ip) of ``[[IP:]PUBLISHED:]TARGET[/PROTO]``."""
    body, _, protocol = entry.partition("/")
    protocol = protocol or "tcp"
    if body.startswith("["):  # [::1]:8080:80
        ip, _, body = body[1:].partition("]:")
        parts = ["", *body.split(":")] if body else [""]
        parts[0] = ip
    else:
        parts = body.split(":")
    if len(parts) > 3:
        raise ComposeError(at, f"wants [[IP:]PUBLISHED:]TARGET[/PROTOCOL], got {entry!r}")
    target = parts[-1]
    published = parts[-2] if len(parts) >= 2 else ""
    host_ip = parts[0] if len(parts) == 3 else ""
    return _port_range(target, at), protocol, published, host_ip


def ports(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    if not isinstance(v, list):
        raise ComposeError(at, "wants a list of ports")
    for i, entry in enumerate(v):
        key = f"{at}[{i}]"
        if isinstance(entry, dict):
            extra = sorted(set(entry) - {"target", "published", "protocol", "mode", "host_ip"})
            target = values.count(entry.get("target"), f"{key}.target", 1, 65535)
            targets, protocol = [target], str(entry.get("protocol", "tcp"))
            published = values.scalar_text(entry.get("published"))
            host_ip = values.scalar_text(entry.get("host_ip"))
        elif isinstance(entry, int | str) and not isinstance(entry, bool):
            extra = []
            targets, protocol, published, host_ip = _short_port(str(entry), key)
        else:
            raise ComposeError(key, "wants PORT, PUBLISHED:TARGET or a mapping with target:")
        if protocol not in _PROTOCOLS:
            report.not_expressible(key, f"protocol {protocol}: Port= knows only tcp and udp")
            continue
        lines = " ".join(_add_ports(plan, targets, protocol, key))
        notes = []
        if published:
            notes.append(
                f"published port {published} is not mapped: the container serves at its "
                "unit's own address"
            )
        if host_ip:
            notes.append(f"host address {host_ip} is not bound")
        if extra:
            notes.append(f"{', '.join(extra)} not passed")
        if notes:
            report.approximated(key, f"{lines}; {'; '.join(notes)}")
        else:
            report.converted(key, lines)


def expose(plan: ServicePlan, v: Any, at: str, report: Report) -> None:
    if not isinstance(v, list):
        raise ComposeError(at, "wants a list of ports")
    lines: list[str] = []
    for i, entry in enumerate(v):
        port, _, protocol = str(entry).partition("/")
        protocol = protocol or "tcp"
        if protocol not in _PROTOCOLS:
            raise ComposeError(f"{at}[{i}]", f"protocol {protocol}: Port= knows only tcp and udp")
        lines += _add_ports(plan, _port_range(port, f"{at}[{i}]"), protocol, f"{at}[{i}]")
    report.converted(at, " ".join(dict.fromkeys(lines)) or "nothing")


def _bind_source(source: str, ctx: Context, key: str, report: Report) -> str | None:
    if source.startswith("~"):
        report.not_expressible(
            key, f"{source}: '~' is the home of whoever converts; give an absolute path"
        )
        return None
    if source.startswith("/"):
        return posixpath.normpath(source)
    return posixpath.normpath(posixpath.join(ctx.base_dir.as_posix(), source))


def _volume_name(name: str, ctx: Context, key: str) -> str:
    if name not in ctx.volumes:
        raise ComposeError(
            key, f"named volume {name!r} is not declared under the top-level volumes:"
        )
    return ctx.volumes[name]


def _bind_note(path: str) -> str:
    return f"bind mount kept: {path} must exist on whichever machine the unit lands on"


def volumes(plan: ServicePlan, v: Any, at: str, ctx: Context, report: Report) -> None:
    if not isinstance(v, list):
        raise ComposeError(at, "wants a list of volumes")
    for i, entry in enumerate(v):
        key = f"{at}[{i}]"
        if isinstance(entry, str):
            _short_volume(plan, entry, key, ctx, report)
        elif isinstance(entry, dict):
            _long_volume(plan, entry, key, ctx, report)
        else:
            raise ComposeError(
                key, "wants SOURCE:TARGET[:MODE] or a mapping with type: and target:"
            )


def _short_volume(plan: ServicePlan, entry: str, key: str, ctx: Context, report: Report) -> None:
    parts = entry.split(":")
    if len(parts) == 1:
        plan.run_options += ["-v", parts[0]]
        report.approximated(key, f"-v {parts[0]}: an anonymous volume, removed with the container")
        return
    if len(parts) > 3 or not parts[0] or not parts[1].startswith("/"):
        raise ComposeError(
            key, f"wants SOURCE:TARGET[:MODE] with an absolute TARGET, got {entry!r}"
        )
    source, target = parts[0], parts[1]
    mode = f":{parts[2]}" if len(parts) == 3 else ""
    if source.startswith(("/", ".", "~")):
        path = _bind_source(source, ctx, key, report)
        if path is not None:
            plan.run_options += ["-v", f"{path}:{target}{mode}"]
            report.approximated(key, f"-v {path}:{target}{mode}; {_bind_note(path)}")
        return
    name = _volume_name(source, ctx, key)
    plan.named_volumes.add(name)
    plan.run_options += ["-v", f"{name}:{target}{mode}"]
    report.converted(key, f"-v {name}:{target}{mode}, a volume on the unit's machine")


def _long_volume(
    plan: ServicePlan, entry: dict[str, Any], key: str, ctx: Context, report: Report
) -> None:
    kind = values.text(entry.get("type", "volume"), f"{key}.type")
    target = values.text(entry.get("target"), f"{key}.target")
    if not target.startswith("/"):
        raise ComposeError(f"{key}.target", f"wants an absolute path, got {target!r}")
    mode = ":ro" if entry.get("read_only") else ""
    extra = sorted(set(entry) - {"type", "source", "target", "read_only"})
    tail = f"; {', '.join(extra)} not passed" if extra else ""
    source = entry.get("source")
    if kind == "tmpfs":
        plan.run_options += ["--tmpfs", target]
        report.converted(key, f"--tmpfs {target}{tail}")
    elif kind == "bind":
        path = _bind_source(values.text(source, f"{key}.source"), ctx, key, report)
        if path is not None:
            plan.run_options += ["-v", f"{path}:{target}{mode}"]
            report.approximated(key, f"-v {path}:{target}{mode}; {_bind_note(path)}{tail}")
    elif kind == "volume":
        if source is None:
            plan.run_options += ["-v", target]
            report.approximated(
                key, f"-v {target}: an anonymous volume, removed with the container{tail}"
            )
            return
        name = _volume_name(values.text(source, f"{key}.source"), ctx, key)
        plan.named_volumes.add(name)
        plan.run_options += ["-v", f"{name}:{target}{mode}"]
        if tail:
            report.approximated(key, f"-v {name}:{target}{mode}{tail}")
        else:
            report.converted(key, f"-v {name}:{target}{mode}, a volume on the unit's machine")
    else:
        report.not_expressible(key, f"volume type {kind}: only volume, bind and tmpfs")
