"""The heartbeat schema: what a machine samples, and the cluster summary that travels on.

Defined once here and read everywhere (issue 11): each agent publishes a `MachineSample`
beside its machine record (``<prefix>samples/<machine-id>``, on the machine's lease, so a
machine that stops reporting loses its sample with its record); the provisioning
container folds the samples and unit states of one cluster into a `ClusterSummary` per
interval and POSTs it to the hosted installer, which keeps the latest and a bounded
history. A summary also lists the cluster's balancers (issue 12: one that keeps a stale
configuration alerts); the field is left out of the JSON when there is none, and a
summary without it reads as one with none, so installers and containers of either age
take each other's summaries. It may also say where the admin panel answers and its TLS
certificate's fingerprint (issue 18: the hosted page shows them, so the user can check
the certificate before logging in), left out the same way when unknown. Parsing
checks every field and raises `HeartbeatError` naming the first one it cannot take;
documents past `MAX_SUMMARY_BYTES` are refused before they are parsed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from vulcano.errors import VulcanoError

SCHEMA_VERSION = 1
# A summary's JSON may not be larger than this (the installer answers 413 past it).
MAX_SUMMARY_BYTES = 256 * 1024
# How many machines and units one summary may list (past them: 413, as too large).
MAX_MACHINES = 1000
MAX_UNITS = 5000
MAX_BALANCERS = 1000
# A balancer's error is cut to this many characters (`cut_error`), its first line kept.
MAX_BALANCER_ERROR = 300
BALANCER_STATUSES = ("ok", "stale")  # vulcano.records: BALANCER_OK, BALANCER_STALE
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}")
_STATE_WORD = re.compile(r"[a-z-]{1,32}")
# SHA-256 as `openssl x509 -fingerprint -sha256` prints it: 32 colon-separated hex pairs.
FINGERPRINT = re.compile(r"[0-9A-F]{2}(:[0-9A-F]{2}){31}")
_PANEL_URL = re.compile(r"https?://[A-Za-z0-9.:\[\]-]{1,261}(/[A-Za-z0-9._~/-]*)?")
MAX_PANEL_URL = 300


class HeartbeatError(VulcanoError, ValueError):
    """A sample or summary we cannot take; ``field`` names the part that is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class MachineHealth(StrEnum):
    """How a machine stands in a summary (healthchecks' model, per machine)."""

    UP = "up"  # sampled within one interval
    LATE = "late"  # its last sample is older than one interval, within the grace
    DOWN = "down"  # no sample past the grace (its record may be gone)
    DECOMMISSIONED = "decommissioned"  # removed on purpose: never an outage


@dataclass(frozen=True)
class MachineSample:
    """One machine's vitals at ``at`` (unix seconds), as its agent measured them."""

    machine_id: str
    at: float
    hostname: str = ""
    public_ip: str = ""
    load1: float = 0.0
    load5: float = 0.0
    load15: float = 0.0
    cpu_percent: float = 0.0  # busy share of all CPUs since the previous sample, 0-100
    mem_total: int = 0  # bytes
    mem_used: int = 0  # bytes (total - available)
    disk_total: int = 0  # bytes, of the filesystem holding the agent's state
    disk_used: int = 0
    # unit name -> "active/sub" as its runner reports it on this machine
    units: dict[str, str] = field(default_factory=dict)
    version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> MachineSample:
        return cls.from_dict(_load(raw, "sample"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "sample") -> MachineSample:
        _only(data, {f for f in cls.__dataclass_fields__}, where)
        units = data.get("units", {})
        if not isinstance(units, dict) or len(units) > MAX_UNITS:
            raise HeartbeatError(f"{where}.units", f"an object of at most {MAX_UNITS} units")
        return cls(
            machine_id=_ident(data.get("machine_id"), f"{where}.machine_id"),
            at=_time(data.get("at"), f"{where}.at"),
            hostname=_text(data.get("hostname", ""), f"{where}.hostname", 253),
            public_ip=_text(data.get("public_ip", ""), f"{where}.public_ip", 45),
            load1=_number(data.get("load1", 0.0), f"{where}.load1"),
            load5=_number(data.get("load5", 0.0), f"{where}.load5"),
            load15=_number(data.get("load15", 0.0), f"{where}.load15"),
            cpu_percent=_number(data.get("cpu_percent", 0.0), f"{where}.cpu_percent", 100.0),
            mem_total=_count(data.get("mem_total", 0), f"{where}.mem_total"),
            mem_used=_count(data.get("mem_used", 0), f"{where}.mem_used"),
            disk_total=_count(data.get("disk_total", 0), f"{where}.disk_total"),
            disk_used=_count(data.get("disk_used", 0), f"{where}.disk_used"),
            units={
                _ident(k, f"{where}.units"): _text(v, f"{where}.units[{k}]", 65)
                for k, v in units.items()
            },
            version=_version(data.get("version", SCHEMA_VERSION), f"{where}.version"),
        )


@dataclass(frozen=True)
class MachineSummary:
    """One machine in a cluster summary: its standing and its latest vitals."""

    machine_id: str
    health: MachineHealth
    last_seen: float  # unix seconds of its latest sample (0: never sampled)
    hostname: str = ""
    public_ip: str = ""
    load1: float = 0.0
    cpu_percent: float = 0.0
    mem_percent: float = 0.0
    disk_percent: float = 0.0


@dataclass(frozen=True)
class UnitSummary:
    """One unit in a cluster summary: where it runs and how."""

    name: str
    machine_id: str  # "" when it is not placed
    active: str  # active, inactive, failed, activating, ...
    sub: str = ""


@dataclass(frozen=True)
class BalancerSummary:
    """One balancer on one machine: whether its live configuration is the latest."""

    name: str
    machine_id: str
    status: str  # ok, or stale: the last change was not applied, the last good one serves
    error: str = ""  # why not (`cut_error`)
    backends: int = 0  # how many backends the live configuration serves


def cut_error(text: str) -> str:
    """``text`` as a summary carries it: whitespace runs as one space, at most
    `MAX_BALANCER_ERROR` printable characters (an ellipsis ends what was cut)."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    if len(flat) <= MAX_BALANCER_ERROR:
        return flat
    return flat[: MAX_BALANCER_ERROR - 1] + "\u2026"


@dataclass(frozen=True)
class PanelSummary:
    """Where the provisioning container's admin panel answers, and how to recognise it."""

    url: str  # scheme://host:port, as the container knows itself
    fingerprint: str = ""  # its certificate's SHA-256 (FINGERPRINT); "" when plain HTTP


def check_fingerprint(value: Any, where: str = "panel.fingerprint") -> str:
    """A SHA-256 fingerprint in `FINGERPRINT`'s form (any case in, upper case out)."""
    if not isinstance(value, str) or not FINGERPRINT.fullmatch(value.upper()):
        raise HeartbeatError(where, "a SHA-256 fingerprint: 32 hex pairs joined by ':'")
    return value.upper()


def panel_from_dict(data: Any) -> PanelSummary | None:
    """A summary's ``panel`` (None when absent); HeartbeatError naming the bad part."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise HeartbeatError("panel", "must be an object")
    _only(data, set(PanelSummary.__dataclass_fields__), "panel")
    url = data.get("url")
    if not isinstance(url, str) or len(url) > MAX_PANEL_URL or not _PANEL_URL.fullmatch(url):
        raise HeartbeatError(
            "panel.url", f"an http(s)://host:port/path URL of at most {MAX_PANEL_URL} characters"
        )
    fingerprint = data.get("fingerprint", "")
    if fingerprint != "":
        fingerprint = check_fingerprint(fingerprint)
    elif url.startswith("https://"):
        raise HeartbeatError("panel.fingerprint", "an https panel needs its fingerprint")
    return PanelSummary(url=url, fingerprint=fingerprint)


@dataclass(frozen=True)
class ClusterSummary:
    """One cluster at ``at``, as the provisioning container folds it for the installer.

    ``seq`` grows by one per summary a container makes for its install (replay
    protection: the installer takes each ``seq`` once, in order); ``interval`` is how
    often the container sends one, so the installer knows when a cluster is late.
    """

    cluster: str
    seq: int
    at: float
    interval: float
    machines: list[MachineSummary] = field(default_factory=list)
    units: list[UnitSummary] = field(default_factory=list)
    version: int = SCHEMA_VERSION
    balancers: list[BalancerSummary] = field(default_factory=list)
    panel: PanelSummary | None = None

    def to_json(self) -> str:
        data = asdict(self)
        if not self.balancers:  # what an installer from before balancers takes
            del data["balancers"]
        if self.panel is None:  # likewise from before the panel's fingerprint
            del data["panel"]
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> ClusterSummary:
        """Parse a summary; SummaryTooLarge past the limits, HeartbeatError otherwise."""
        if len(raw) > MAX_SUMMARY_BYTES:
            raise SummaryTooLarge(f"a summary may hold at most {MAX_SUMMARY_BYTES} bytes")
        data = _load(raw, "summary")
        _only(data, {f for f in cls.__dataclass_fields__}, "summary")
        machines = data.get("machines", [])
        units = data.get("units", [])
        balancers = data.get("balancers", [])
        for name, value in (("machines", machines), ("units", units), ("balancers", balancers)):
            if not isinstance(value, list):
                raise HeartbeatError(name, "must be a list")
        if len(machines) > MAX_MACHINES or len(units) > MAX_UNITS:
            raise SummaryTooLarge(f"at most {MAX_MACHINES} machines and {MAX_UNITS} units")
        if len(balancers) > MAX_BALANCERS:
            raise SummaryTooLarge(f"at most {MAX_BALANCERS} balancers")
        return cls(
            cluster=_ident(data.get("cluster"), "cluster"),
            seq=_count(data.get("seq"), "seq"),
            at=_time(data.get("at"), "at"),
            interval=_number(data.get("interval"), "interval", 86400.0, low=1.0),
            machines=[_machine(m, f"machines[{i}]") for i, m in enumerate(machines)],
            units=[_unit(u, f"units[{i}]") for i, u in enumerate(units)],
            version=_version(data.get("version", SCHEMA_VERSION), "version"),
            balancers=[_balancer(b, f"balancers[{i}]") for i, b in enumerate(balancers)],
            panel=panel_from_dict(data.get("panel")),
        )


class SummaryTooLarge(HeartbeatError):
    """A summary past the size or count limits (413)."""

    def __init__(self, message: str) -> None:
        super().__init__("summary", message)


def _machine(data: Any, where: str) -> MachineSummary:
    if not isinstance(data, dict):
        raise HeartbeatError(where, "must be an object")
    _only(data, set(MachineSummary.__dataclass_fields__), where)
    health = data.get("health")
    try:
        standing = MachineHealth(str(health))
    except ValueError:
        choices = ", ".join(h.value for h in MachineHealth)
        raise HeartbeatError(f"{where}.health", f"choose one of {choices}") from None
    return MachineSummary(
        machine_id=_ident(data.get("machine_id"), f"{where}.machine_id"),
        health=standing,
        last_seen=_time(data.get("last_seen"), f"{where}.last_seen", allow_zero=True),
        hostname=_text(data.get("hostname", ""), f"{where}.hostname", 253),
        public_ip=_text(data.get("public_ip", ""), f"{where}.public_ip", 45),
        load1=_number(data.get("load1", 0.0), f"{where}.load1"),
        cpu_percent=_number(data.get("cpu_percent", 0.0), f"{where}.cpu_percent", 100.0),
        mem_percent=_number(data.get("mem_percent", 0.0), f"{where}.mem_percent", 100.0),
        disk_percent=_number(data.get("disk_percent", 0.0), f"{where}.disk_percent", 100.0),
    )


def _unit(data: Any, where: str) -> UnitSummary:
    if not isinstance(data, dict):
        raise HeartbeatError(where, "must be an object")
    _only(data, set(UnitSummary.__dataclass_fields__), where)
    machine = data.get("machine_id", "")
    return UnitSummary(
        name=_ident(data.get("name"), f"{where}.name"),
        machine_id="" if machine == "" else _ident(machine, f"{where}.machine_id"),
        active=_word(data.get("active"), f"{where}.active"),
        sub=_word(data.get("sub", ""), f"{where}.sub", allow_empty=True),
    )


def _balancer(data: Any, where: str) -> BalancerSummary:
    if not isinstance(data, dict):
        raise HeartbeatError(where, "must be an object")
    _only(data, set(BalancerSummary.__dataclass_fields__), where)
    status = data.get("status")
    if status not in BALANCER_STATUSES:
        raise HeartbeatError(f"{where}.status", f"choose one of {', '.join(BALANCER_STATUSES)}")
    backends = _count(data.get("backends", 0), f"{where}.backends")
    if backends > MAX_UNITS:
        raise HeartbeatError(f"{where}.backends", f"must be at most {MAX_UNITS}")
    return BalancerSummary(
        name=_ident(data.get("name"), f"{where}.name"),
        machine_id=_ident(data.get("machine_id"), f"{where}.machine_id"),
        status=str(status),
        error=_text(data.get("error", ""), f"{where}.error", MAX_BALANCER_ERROR),
        backends=backends,
    )


# --- field checks -------------------------------------------------------------------------


def _load(raw: bytes | str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HeartbeatError(what, f"not JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise HeartbeatError(what, "must be a JSON object")
    return data


def _only(data: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise HeartbeatError(f"{where}.{unknown[0]}", "unknown field")


def _ident(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise HeartbeatError(where, "1-128 letters, digits and '_.@:-', a letter or digit first")
    return value


def _text(value: Any, where: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit or not value.isprintable():
        raise HeartbeatError(where, f"printable text of at most {limit} characters")
    return value


def _word(value: Any, where: str, allow_empty: bool = False) -> str:
    if allow_empty and value == "":
        return ""
    if not isinstance(value, str) or not _STATE_WORD.fullmatch(value):
        raise HeartbeatError(where, "a state word: 1-32 lowercase letters and '-'")
    return value


def _number(value: Any, where: str, high: float = 1e6, low: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HeartbeatError(where, "must be a number")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise HeartbeatError(where, f"must be between {low:g} and {high:g}")
    return number


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise HeartbeatError(where, "must be a whole number, 0 or more")
    return value


def _time(value: Any, where: str, allow_zero: bool = False) -> float:
    number = _number(value, where, high=4102444800.0)  # 2100-01-01
    if number == 0 and allow_zero:
        return 0.0
    if number < 1e9:
        raise HeartbeatError(where, "must be unix seconds (after 2001)")
    return number


def _version(value: Any, where: str) -> int:
    if value != SCHEMA_VERSION:
        raise HeartbeatError(where, f"this Vulcano reads schema version {SCHEMA_VERSION} only")
    return SCHEMA_VERSION
