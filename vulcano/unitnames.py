"""Unit names and specifiers, as systemd reads them.

A name splits into prefix@instance.suffix (templates end in ``@``); ``%n %N %p %i …``
in a unit's values expand from that name and the machine. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vulcano.errors import UnitNameError

MAX_NAME_LENGTH = 255
UNIT_SUFFIXES = (
    "service",
    "socket",
    "timer",
    "path",
    "target",
    "mount",
    "automount",
    "device",
    "swap",
    "slice",
    "scope",
)
# systemd's and fleet's name rules: the prefix has no '@'; the instance may hold more
_NAME_RE = re.compile(r"^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\@-]*)?\.([a-z]+)$")
# the unit types systemd (unit_type_may_template) and fleet (validTemplateTypes) template
TEMPLATE_SUFFIXES = ("service", "socket", "timer", "path", "target")
# types fleet still named but today's systemd no longer has
_REMOVED_SUFFIXES = {
    "snapshot": "systemd dropped snapshot units (v228); there is nothing to run",
    "busname": "systemd dropped busname units with kdbus; use a .service with BusName=",
}
# systemd's specifier letters; the ones we expand ourselves are in expand_specifiers.
_SYSTEMD_SPECIFIERS = frozenset("aAbBCdEfgGhHiIjJlLmMnNopPqsStTuUvVwWyY%")


@dataclass(frozen=True)
class UnitName:
    """A unit's name split the way systemd splits it: prefix@instance.suffix."""

    name: str
    prefix: str
    instance: str | None  # None: not templated; "": a template itself
    suffix: str

    @property
    def is_template(self) -> bool:
        return self.instance == ""

    @property
    def is_instance(self) -> bool:
        return bool(self.instance)

    @property
    def template(self) -> str | None:
        """The template this instance comes from (``web@.service`` for ``web@1.service``)."""
        if not self.is_instance:
            return None
        return f"{self.prefix}@.{self.suffix}"

    @property
    def stem(self) -> str:
        """%N: the name without its type suffix."""
        return self.name[: -len(self.suffix) - 1]

    def instantiate(self, instance: str) -> str:
        if not self.is_template:
            raise UnitNameError(f"{self.name}: only a template (name@.suffix) has instances")
        return parse_name(f"{self.prefix}@{instance}.{self.suffix}").name


def is_template(name: str) -> bool:
    """Whether ``name`` is a template (``name@.service``); False for an invalid name."""
    try:
        return parse_name(name).is_template
    except UnitNameError:
        return False


def parse_name(name: str) -> UnitName:
    """Split and validate a unit name; raises UnitNameError naming what is wrong."""
    if not name:
        raise UnitNameError("unit name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise UnitNameError(f"unit name is longer than {MAX_NAME_LENGTH} characters: {name[:40]}…")
    m = _NAME_RE.match(name)
    if not m:
        raise UnitNameError(
            f"{name!r} is not a valid unit name (letters, digits, ':_.\\-', then an "
            "optional '@instance' that may hold more '@', then '.service' or another type)"
        )
    suffix = m.group(2)
    if suffix in _REMOVED_SUFFIXES:
        raise UnitNameError(f"{name!r}: fleet knew '.{suffix}' but {_REMOVED_SUFFIXES[suffix]}")
    if suffix not in UNIT_SUFFIXES:
        raise UnitNameError(f"{name!r}: unknown unit type '.{suffix}'")
    base = name[: -len(suffix) - 1]
    if "@" in base:
        prefix, instance = base.split("@", 1)
        if not prefix:
            raise UnitNameError(f"{name!r}: nothing before '@'")
        if suffix not in TEMPLATE_SUFFIXES:
            raise UnitNameError(
                f"{name!r}: a .{suffix} unit cannot be a template or an instance (systemd "
                f"and fleet template only {', '.join('.' + t for t in TEMPLATE_SUFFIXES)}); "
                f"name it without '@'"
            )
        return UnitName(name, prefix, instance, suffix)
    return UnitName(name, base, None, suffix)


def mangle(arg: str) -> str:
    """fleetctl's reading of a unit argument: ``foo`` means ``foo.service``.

    As fleetctl's unitNameMangle: the last path component, with ``.service`` appended
    unless it already ends in a unit type. Unlike fleetctl (which knew only service,
    socket, timer, path, device, mount and automount, so ``foo.target`` became
    ``foo.target.service``), every type in UNIT_SUFFIXES is kept as given.
    """
    base = arg.rstrip("/").rsplit("/", 1)[-1]
    if any(base.endswith("." + t) for t in (*UNIT_SUFFIXES, *_REMOVED_SUFFIXES)):
        return base
    return f"{base}.service"


def _unescape(s: str) -> str:
    # systemd's \xNN escaping in instance names and prefixes
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), s).replace("-", "/")


def check_specifiers(value: str) -> str | None:
    """None if every %-specifier is one systemd knows; else the first bad one."""
    i = 0
    while i < len(value):
        if value[i] == "%":
            if i + 1 >= len(value):
                return "%"
            if value[i + 1] not in _SYSTEMD_SPECIFIERS:
                return value[i : i + 2]
            i += 2
            continue
        i += 1
    return None


def expand_specifiers(
    value: str, name: str, hostname: str = "", machine_id: str = "", fleet_only: bool = False
) -> str:
    """Expand %n %N %p %P %i %I %H %m %% (fleet_only: just %n %N %p %i, as fleet did).

    Specifiers we do not know the value of are left for systemd to expand.
    """
    un = parse_name(name)
    table = {
        "n": un.name,
        "N": un.stem,
        "p": un.prefix,
        "i": un.instance or "",
    }
    if not fleet_only:
        table.update(
            {
                "P": _unescape(un.prefix),
                "I": _unescape(un.instance or ""),
                "H": hostname,
                "l": hostname.split(".")[0],
                "m": machine_id,
                "t": "/run",
                "T": "/tmp",  # noqa: S108 - systemd's %T, not a file we create
                "V": "/var/tmp",  # noqa: S108 - systemd's %V
                "%": "%",
            }
        )
    out: list[str] = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "%" and i + 1 < len(value):
            spec = value[i + 1]
            if spec in table:
                out.append(table[spec])
            elif fleet_only and spec == "%":
                out.append("%%")  # keep it for systemd
            else:
                out.append(value[i : i + 2])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)
