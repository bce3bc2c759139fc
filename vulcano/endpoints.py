"""A unit's service: its ports, its health checks, and the endpoints published for it.

A unit declares them in ``[X-Vulcano]``::

    [X-Vulcano]
    Port=8080                      # or  http=8080/tcp  (a name, a port, a protocol)
    Check=http :8080/healthz interval=2s timeout=1s passing=2 failing=3
    Check=tcp :6379 name=redis
    Check=exec interval=5s timeout=2s -- /usr/bin/redis-cli ping
    CheckRestart=30s               # restart the unit once a check stays failing that long

Checks follow Consul's model: an interval, a timeout, ``passing`` successes in a row
before a check passes (Consul's success_before_passing) and ``failing`` failures in a row
before it fails (failures_before_critical). An HTTP check passes on a 2xx or 3xx answer;
a TCP check on a completed connect; an exec check on exit status 0. A target's host,
when left out (``:8080``), is the instance's own address.

The agent publishes ``endpoints/<unit>/<machine>`` (an Endpoint, on its machine lease)
while the instance runs and every check passes, and withdraws it otherwise; balancers
read only that prefix. Checks added at runtime (``vulcano check add``) live at
``checks/<unit>/<name>`` beside the ones in the file; results at
``check-states/<unit>/<machine>``.

Pure: no I/O. It is kept as one module: the lines' grammar and the records made from
them are one contract between the CLI, the agent, compose conversion and the balancer.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from vulcano.errors import UnitFileError
from vulcano.unitnames import expand_specifiers

if TYPE_CHECKING:
    from vulcano.units import UnitFile

SERVICE_KEYS = frozenset({"Port", "Check", "CheckRestart"})
MAX_PORTS = 64
MAX_CHECKS = 16
MAX_CHECK_LINE = 1024
CHECK_KINDS = ("http", "tcp", "exec")
# Bounds on a check's timings (seconds), so a typo cannot make a check hammer a service
# or wait forever.
MIN_INTERVAL = 0.2
MAX_INTERVAL = 3600.0
MAX_THRESHOLD = 100
DEFAULT_INTERVAL = 10.0
DEFAULT_TIMEOUT = 2.0
DEFAULT_PASSING = 1
DEFAULT_FAILING = 3

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_PORT_RE = re.compile(
    r"(?:(?P<name>[A-Za-z][A-Za-z0-9_-]{0,31})=)?(?P<port>\d{1,5})(?:/(?P<proto>tcp|udp))?"
)
_DURATION_RE = re.compile(r"(?P<n>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h)?")
_TARGET_RE = re.compile(
    r"(?P<host>[A-Za-z0-9.\-]*|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})(?P<path>/\S*)?"
)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class CheckStatus(StrEnum):
    PENDING = "pending"  # not yet enough results either way
    PASSING = "passing"
    FAILING = "failing"


def valid_check_name(name: str) -> bool:
    """A check's name: letters, digits, '_', '.', '-', at most 63, one path segment."""
    return _NAME_RE.fullmatch(name) is not None


def parse_duration(text: str, what: str) -> float:
    """``500ms``, ``2s``, ``1m``, ``1h`` or bare seconds; UnitFileError naming ``what``."""
    m = _DURATION_RE.fullmatch(text.strip())
    if not m:
        raise UnitFileError(f"{what} wants a duration such as 2s, 500ms or 1m, got {text!r}")
    return float(m["n"]) * _UNITS[m["unit"]]


def format_duration(seconds: float) -> str:
    if seconds < 1 or seconds != int(seconds):
        return f"{round(seconds * 1000)}ms"
    return f"{int(seconds)}s"


@dataclass(frozen=True)
class PortSpec:
    port: int
    protocol: str = "tcp"
    name: str = ""

    def to_line(self) -> str:
        head = f"{self.name}={self.port}" if self.name else str(self.port)
        return head if self.protocol == "tcp" else f"{head}/{self.protocol}"

    def to_dict(self) -> dict[str, Any]:
        return {"port": self.port, "protocol": self.protocol, "name": self.name}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PortSpec:
        return cls(int(d["port"]), str(d.get("protocol", "tcp")), str(d.get("name", "")))


def parse_port(value: str, where: str = "Port=") -> PortSpec:
    m = _PORT_RE.fullmatch(value.strip())
    if not m:
        raise UnitFileError(
            f"{where} wants PORT, NAME=PORT or NAME=PORT/udp (PORT 1-65535), got {value!r}"
        )
    port = int(m["port"])
    if not 1 <= port <= 65535:
        raise UnitFileError(f"{where} port {port} is outside 1-65535")
    return PortSpec(port, m["proto"] or "tcp", m["name"] or "")


@dataclass(frozen=True)
class CheckSpec:
    """One health check. ``target``: ``[host]:port[/path]`` (http), ``[host]:port`` (tcp),
    or the command's words (exec)."""

    kind: str
    target: tuple[str, ...]
    name: str = ""
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    passing: int = DEFAULT_PASSING
    failing: int = DEFAULT_FAILING

    @property
    def id(self) -> str:
        """The check's name, or one made from its kind and target."""
        if self.name:
            return self.name
        if self.kind == "exec":
            return "exec-" + re.sub(r"[^A-Za-z0-9_.-]", "_", self.target[0].rsplit("/", 1)[-1])[:40]
        return f"{self.kind}-{re.sub(r'[^A-Za-z0-9_.-]', '_', self.target[0])[:40].strip('_')}"

    def address(self, default_host: str) -> tuple[str, int, str]:
        """(host, port, path) of an http/tcp check, the host defaulting to ``default_host``."""
        m = _TARGET_RE.fullmatch(self.target[0])
        if m is None:  # parse_check refuses such a target
            raise UnitFileError(f"check {self.id}: bad target {self.target[0]!r}")
        host = m["host"].strip("[]") or default_host
        return host, int(m["port"]), m["path"] or "/"

    def to_line(self) -> str:
        opts = []
        if self.name:
            opts.append(f"name={self.name}")
        if self.interval != DEFAULT_INTERVAL:
            opts.append(f"interval={format_duration(self.interval)}")
        if self.timeout != DEFAULT_TIMEOUT:
            opts.append(f"timeout={format_duration(self.timeout)}")
        if self.passing != DEFAULT_PASSING:
            opts.append(f"passing={self.passing}")
        if self.failing != DEFAULT_FAILING:
            opts.append(f"failing={self.failing}")
        if self.kind == "exec":
            return " ".join(["exec", *opts, "--", shlex.join(self.target)])
        return " ".join([self.kind, self.target[0], *opts])

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "target": list(self.target),
                "name": self.name,
                "interval": self.interval,
                "timeout": self.timeout,
                "passing": self.passing,
                "failing": self.failing,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> CheckSpec:
        d = json.loads(raw)
        return cls(
            str(d["kind"]),
            tuple(str(w) for w in d["target"]),
            str(d.get("name", "")),
            float(d.get("interval", DEFAULT_INTERVAL)),
            float(d.get("timeout", DEFAULT_TIMEOUT)),
            int(d.get("passing", DEFAULT_PASSING)),
            int(d.get("failing", DEFAULT_FAILING)),
        )


_CHECK_OPTIONS = ("name", "interval", "timeout", "passing", "failing")


def parse_check(value: str, where: str = "Check=") -> CheckSpec:
    """``KIND TARGET [OPTION=VALUE...]``, or ``exec [OPTION=VALUE...] -- COMMAND...``."""
    if len(value) > MAX_CHECK_LINE:
        raise UnitFileError(f"{where} is longer than {MAX_CHECK_LINE} characters")
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise UnitFileError(f"{where} {exc}") from None
    if not words:
        raise UnitFileError(
            f"{where} is empty; it wants KIND TARGET, KIND one of {', '.join(CHECK_KINDS)}"
        )
    kind, rest = words[0].lower(), words[1:]
    if kind not in CHECK_KINDS:
        raise UnitFileError(
            f"{where} unknown check kind {words[0]!r} (known: {', '.join(CHECK_KINDS)})"
        )
    if kind == "exec":
        if "--" not in rest:
            raise UnitFileError(
                f"{where} an exec check wants its command after '--': exec [OPTIONS] -- COMMAND"
            )
        cut = rest.index("--")
        option_words, target = rest[:cut], tuple(rest[cut + 1 :])
        if not target or not target[0]:
            raise UnitFileError(f"{where} an exec check has no command after '--'")
    else:
        if not rest:
            raise UnitFileError(f"{where} a {kind} check wants a target [HOST]:PORT")
        target_word, option_words = rest[0], rest[1:]
        m = _TARGET_RE.fullmatch(target_word)
        if m is None or (kind == "tcp" and m["path"]):
            shape = "[HOST]:PORT[/PATH]" if kind == "http" else "[HOST]:PORT"
            raise UnitFileError(
                f"{where} a {kind} check wants a target {shape}, got {target_word!r}"
            )
        if not 1 <= int(m["port"]) <= 65535:
            raise UnitFileError(f"{where} port {m['port']} is outside 1-65535")
        target = (target_word,)
    opts: dict[str, str] = {}
    for word in option_words:
        key, eq, val = word.partition("=")
        if not eq or key not in _CHECK_OPTIONS:
            raise UnitFileError(
                f"{where} unknown check option {word!r} (known: {', '.join(_CHECK_OPTIONS)})"
            )
        if key in opts:
            raise UnitFileError(f"{where} option {key}= given twice")
        opts[key] = val
    name = opts.get("name", "")
    if name and not _NAME_RE.fullmatch(name):
        raise UnitFileError(
            f"{where} name= wants letters, digits, '_', '.', '-' (at most 63), got {name!r}"
        )
    interval = parse_duration(opts.get("interval", str(DEFAULT_INTERVAL)), f"{where} interval=")
    timeout = parse_duration(opts.get("timeout", str(DEFAULT_TIMEOUT)), f"{where} timeout=")
    if "timeout" not in opts:  # the default never outlasts a short interval
        timeout = min(timeout, interval)
    if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
        raise UnitFileError(
            f"{where} interval= must be between {MIN_INTERVAL}s and {MAX_INTERVAL:.0f}s"
        )
    if not 0 < timeout <= interval:
        raise UnitFileError(f"{where} timeout= must be more than 0 and at most the interval")
    counts = {}
    for key, default in (("passing", DEFAULT_PASSING), ("failing", DEFAULT_FAILING)):
        raw = opts.get(key, str(default))
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_THRESHOLD:
            raise UnitFileError(
                f"{where} {key}= wants a count from 1 to {MAX_THRESHOLD}, got {raw!r}"
            )
        counts[key] = int(raw)
    return CheckSpec(kind, target, name, interval, timeout, counts["passing"], counts["failing"])


@dataclass(frozen=True)
class ServiceOptions:
    """A unit's ``[X-Vulcano]`` service lines, parsed."""

    ports: tuple[PortSpec, ...] = ()
    checks: tuple[CheckSpec, ...] = ()
    check_restart: float | None = None  # seconds a check may stay failing before a restart


def service_options(unit: UnitFile, where: str = "unit") -> ServiceOptions:
    """The Port=, Check= and CheckRestart= lines of ``unit``; UnitFileError names the line."""
    ports: list[PortSpec] = []
    checks: list[CheckSpec] = []
    restart: float | None = None
    for o in unit.options:
        if o.section != "X-Vulcano" or o.key not in SERVICE_KEYS:
            continue
        at = f"{where} line {o.line}: {o.key}="
        if o.value.strip() == "":  # systemd: an empty assignment resets the list
            if o.key == "Port":
                ports.clear()
            elif o.key == "Check":
                checks.clear()
            else:
                restart = None
            continue
        if o.key == "Port":
            ports.append(parse_port(o.value, at))
        elif o.key == "Check":
            checks.append(parse_check(o.value, at))
        else:
            restart = parse_duration(o.value, at)
            if not 1 <= restart <= 86400:
                raise UnitFileError(f"{at} wants a duration from 1s to 24h")
    if len(ports) > MAX_PORTS:
        raise UnitFileError(f"{where}: more than {MAX_PORTS} Port= lines")
    if len(checks) > MAX_CHECKS:
        raise UnitFileError(f"{where}: more than {MAX_CHECKS} Check= lines")
    seen: set[str] = set()
    for c in checks:
        if c.id in seen:
            raise UnitFileError(f"{where}: two checks named {c.id!r}; give one a name=")
        seen.add(c.id)
    if len({(p.port, p.protocol) for p in ports}) != len(ports):
        raise UnitFileError(f"{where}: a port is declared twice")
    return ServiceOptions(tuple(ports), tuple(checks), restart)


@dataclass(frozen=True)
class Endpoint:
    """A running, healthy instance of a unit (``endpoints/<unit>/<machine>``, on its lease)."""

    unit: str
    machine_id: str
    address: str
    ports: tuple[PortSpec, ...] = ()
    since: float = 0.0

    def to_json(self) -> str:
        return json.dumps(
            {
                "unit": self.unit,
                "machine_id": self.machine_id,
                "address": self.address,
                "ports": [p.to_dict() for p in self.ports],
                "since": self.since,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Endpoint:
        """Parse a record; ValueError, KeyError or TypeError when it is not one."""
        d = json.loads(raw)
        return cls(
            str(d["unit"]),
            str(d["machine_id"]),
            str(d["address"]),
            tuple(PortSpec.from_dict(p) for p in d.get("ports") or ()),
            float(d.get("since", 0.0)),
        )


@dataclass(frozen=True)
class CheckResult:
    status: CheckStatus = CheckStatus.PENDING
    output: str = ""  # the last result's message, cut short
    since: float = 0.0  # when the status last changed (wall clock)
    streak: int = 0  # results in a row the same way as the last one


@dataclass(frozen=True)
class CheckStates:
    """One instance's check results (``check-states/<unit>/<machine>``, on its lease)."""

    unit: str
    machine_id: str
    checks: dict[str, CheckResult] = field(default_factory=dict)
    note: str = ""  # what the agent did about them (a CheckRestart= restart), if anything

    @property
    def status(self) -> CheckStatus:
        """Failing if any check fails, pending if any is pending, else passing."""
        statuses = {r.status for r in self.checks.values()}
        if CheckStatus.FAILING in statuses:
            return CheckStatus.FAILING
        if CheckStatus.PENDING in statuses:
            return CheckStatus.PENDING
        return CheckStatus.PASSING

    def to_json(self) -> str:
        return json.dumps(
            {
                "unit": self.unit,
                "machine_id": self.machine_id,
                "checks": {
                    k: {
                        "status": str(r.status),
                        "output": r.output,
                        "since": r.since,
                        "streak": r.streak,
                    }
                    for k, r in self.checks.items()
                },
                "note": self.note,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> CheckStates:
        d = json.loads(raw)
        return cls(
            str(d["unit"]),
            str(d["machine_id"]),
            {
                str(k): CheckResult(
                    CheckStatus(v["status"]),
                    str(v.get("output", "")),
                    float(v.get("since", 0.0)),
                    int(v.get("streak", 0)),
                )
                for k, v in dict(d.get("checks") or {}).items()
            },
            str(d.get("note", "")),
        )


def expanded(check: CheckSpec, name: str, hostname: str, machine_id: str) -> CheckSpec:
    """``check`` as instance ``name`` runs it: the unit's specifiers (%i, %n, %p, %m...)
    expanded in its target, as systemd expands them in the unit's own command lines."""
    words = tuple(
        expand_specifiers(w, name, hostname=hostname, machine_id=machine_id) for w in check.target
    )
    return dataclasses.replace(check, target=words)


def instance_matches(selector: str, unit: str) -> bool:
    """A balancer's ``--for``: ``web@`` is every instance of web@.service; else the exact unit
    (``.service`` may be left out)."""
    if selector.endswith("@"):
        return (
            unit.startswith(selector)
            and unit.endswith(".service")
            and len(unit) > len(selector) + len(".service")
        )
    full = selector if "." in selector else f"{selector}.service"
    return unit == full
