"""The unit-file model: systemd INI, fleet's [X-Fleet] options, templates and specifiers.

Pure: no I/O. The CLI validates with it before anything reaches etcd; the engine and the
runner read the same parsed form, so a file means one thing everywhere.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import shlex
from dataclasses import dataclass, field

from vulcano.errors import UnitFileError, UnitNameError
from vulcano.unitnames import check_specifiers, expand_specifiers, parse_name

MAX_UNIT_FILE_BYTES = 256 * 1024
TRUE_WORDS = frozenset({"true", "yes", "1", "on", "t", "y"})
FALSE_WORDS = frozenset({"false", "no", "0", "off", "f", "n"})
_SECTION_RE = re.compile(r"^\[([^\[\]]+)\]$")
_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_FLEET_KEYS = {
    "MachineID": "MachineID",
    "MachineOf": "MachineOf",
    "MachineMetadata": "MachineMetadata",
    "Conflicts": "Conflicts",
    "Global": "Global",
    "Replaces": "Replaces",
    # fleet's deprecated spellings, still found in old unit files
    "X-ConditionMachineID": "MachineID",
    "X-ConditionMachineOf": "MachineOf",
    "X-ConditionMachineMetadata": "MachineMetadata",
    "X-Conflicts": "Conflicts",
}
_VULCANO_KEYS = {"Sandbox"}


def glob_matches(pattern: str, name: str) -> bool:
    """fleet's Conflicts=/Replaces= globs: * ? [..], case-sensitive, whole name."""
    return fnmatch.fnmatchcase(name, pattern)


@dataclass(frozen=True)
class Option:
    section: str
    key: str
    value: str
    line: int  # 1-based line where the assignment starts


@dataclass(frozen=True)
class UnitFile:
    """A parsed unit file: its exact text and its assignments in order."""

    text: str
    options: tuple[Option, ...]

    @property
    def hash(self) -> str:
        return content_hash(self.text)

    def sections(self) -> list[str]:
        seen: list[str] = []
        for o in self.options:
            if o.section not in seen:
                seen.append(o.section)
        return seen

    def values(self, section: str, key: str) -> list[str]:
        """Every value of a list option, honouring systemd's 'empty assignment resets'."""
        out: list[str] = []
        for o in self.options:
            if o.section == section and o.key == key:
                if o.value == "":
                    out = []
                else:
                    out.append(o.value)
        return out

    def value(self, section: str, key: str, default: str | None = None) -> str | None:
        """The last value of a single-valued option."""
        found = default
        for o in self.options:
            if o.section == section and o.key == key:
                found = o.value
        return found

    def find(self, section: str, key: str) -> list[Option]:
        return [o for o in self.options if o.section == section and o.key == key]


def content_hash(text: str) -> str:
    """The address of a unit file's content in etcd: sha1 of its exact UTF-8 bytes."""
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def parse(text: str, name: str = "unit file") -> UnitFile:
    """Parse systemd INI; raises UnitFileError naming the file and the offending line."""
    if len(text.encode("utf-8", errors="surrogatepass")) > MAX_UNIT_FILE_BYTES:
        raise UnitFileError(f"{name}: larger than {MAX_UNIT_FILE_BYTES // 1024} KiB")
    if "\x00" in text:
        lineno = text[: text.index("\x00")].count("\n") + 1
        raise UnitFileError(f"{name} line {lineno}: contains a NUL byte")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnitFileError(f"{name}: not valid UTF-8 text") from None
    options: list[Option] = []
    section: str | None = None
    pending: tuple[str, list[str], int] | None = None  # key, parts, start line
    lines = text.split("\n")
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if pending is not None:
            key, parts, start = pending
            if line.startswith(("#", ";")):
                continue  # systemd skips comment lines inside a continuation
            if line.endswith("\\"):
                parts.append(line[:-1])
                continue
            parts.append(line)
            assert section is not None
            options.append(Option(section, key, " ".join(p.strip() for p in parts).strip(), start))
            pending = None
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            m = _SECTION_RE.match(line)
            if not m or not m.group(1).strip():
                raise UnitFileError(f"{name} line {lineno}: malformed section header {_show(line)}")
            section = m.group(1)
            continue
        if "=" not in line:
            raise UnitFileError(f"{name} line {lineno}: expected Key=Value, got {_show(line)}")
        key, value = line.split("=", 1)
        key = key.strip()
        if not _KEY_RE.match(key):
            raise UnitFileError(f"{name} line {lineno}: invalid key {_show(key)}")
        if section is None:
            raise UnitFileError(f"{name} line {lineno}: {key}= comes before any [Section]")
        value = value.strip()
        if value.endswith("\\"):
            pending = (key, [value[:-1]], lineno)
            continue
        options.append(Option(section, key, value, lineno))
    if pending is not None:
        key, parts, start = pending
        assert section is not None
        options.append(Option(section, key, " ".join(p.strip() for p in parts).strip(), start))
    if not options and not any(_SECTION_RE.match(ln.strip()) for ln in lines):
        raise UnitFileError(f"{name}: empty unit file (no [Section] and no options)")
    return UnitFile(text=text, options=tuple(options))


def _show(s: str, limit: int = 60) -> str:
    return repr(s if len(s) <= limit else s[:limit] + "…")


# --- fleet's [X-Fleet] options ----------------------------------------------------


@dataclass(frozen=True)
class FleetOptions:
    """What the engine needs to place a unit, with fleet's specifiers already expanded."""

    machine_id: str | None = None
    machine_of: tuple[str, ...] = ()
    machine_metadata: tuple[tuple[str, str], ...] = ()
    conflicts: tuple[str, ...] = ()
    global_: bool = False
    replaces: tuple[str, ...] = ()
    sandbox: bool = False
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def metadata_requirements(self) -> dict[str, list[str]]:
        """key → allowed values: values of one key OR'd, different keys AND'd."""
        req: dict[str, list[str]] = {}
        for k, v in self.machine_metadata:
            req.setdefault(k, [])
            if v not in req[k]:
                req[k].append(v)
        return req

    def to_json(self) -> dict[str, object]:
        return {
            "machine_id": self.machine_id,
            "machine_of": list(self.machine_of),
            "machine_metadata": [list(kv) for kv in self.machine_metadata],
            "conflicts": list(self.conflicts),
            "global": self.global_,
            "replaces": list(self.replaces),
            "sandbox": self.sandbox,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> FleetOptions:
        def strs(key: str) -> tuple[str, ...]:
            v = data.get(key) or []
            assert isinstance(v, list)
            return tuple(str(x) for x in v)

        md = data.get("machine_metadata") or []
        assert isinstance(md, list)
        mid = data.get("machine_id")
        return cls(
            machine_id=str(mid) if mid else None,
            machine_of=strs("machine_of"),
            machine_metadata=tuple((str(k), str(v)) for k, v in md),
            conflicts=strs("conflicts"),
            global_=bool(data.get("global")),
            replaces=strs("replaces"),
            sandbox=bool(data.get("sandbox")),
        )


def parse_bool(value: str) -> bool | None:
    v = value.strip().lower()
    if v in TRUE_WORDS:
        return True
    if v in FALSE_WORDS:
        return False
    return None


def fleet_options(unit: UnitFile, name: str) -> FleetOptions:
    """The [X-Fleet] and [X-Vulcano] options of ``unit`` as instance ``name``; validated."""
    parse_name(name)
    where = name
    lines: dict[str, int] = {}
    machine_id: str | None = None
    machine_of: list[str] = []
    metadata: list[tuple[str, str]] = []
    conflicts: list[str] = []
    global_ = False
    replaces: list[str] = []
    sandbox = False
    for o in unit.options:
        if o.section == "X-Vulcano":
            if o.key not in _VULCANO_KEYS:
                raise UnitFileError(
                    f"{where} line {o.line}: unknown [X-Vulcano] option {o.key}= "
                    f"(known: {', '.join(sorted(_VULCANO_KEYS))})"
                )
            b = parse_bool(o.value)
            if b is None:
                raise UnitFileError(
                    f"{where} line {o.line}: Sandbox= wants a boolean, got {o.value!r}"
                )
            sandbox = b
            continue
        if o.section != "X-Fleet":
            continue
        key = _FLEET_KEYS.get(o.key)
        if key is None:
            raise UnitFileError(
                f"{where} line {o.line}: unknown [X-Fleet] option {o.key}= "
                "(known: MachineID, MachineOf, MachineMetadata, Conflicts, Global, Replaces)"
            )
        bad = check_specifiers(o.value)
        if bad:
            raise UnitFileError(f"{where} line {o.line}: unknown specifier {bad!r} in {o.key}=")
        value = expand_specifiers(o.value, name, fleet_only=True).replace("%%", "%")
        if value == "":
            continue  # an empty assignment sets nothing
        lines.setdefault(key, o.line)
        if key == "MachineID":
            if len(value.split()) != 1:
                raise UnitFileError(f"{where} line {o.line}: MachineID= takes one machine id")
            machine_id = value
        elif key == "MachineOf":
            for item in value.split():
                try:
                    parse_name(item)
                except UnitNameError as exc:
                    raise UnitFileError(f"{where} line {o.line}: MachineOf= {exc}") from None
                if item == name:
                    raise UnitFileError(f"{where} line {o.line}: MachineOf= names the unit itself")
                machine_of.append(item)
        elif key == "MachineMetadata":
            try:
                items = shlex.split(value)
            except ValueError as exc:
                raise UnitFileError(f"{where} line {o.line}: MachineMetadata= {exc}") from None
            for item in items:
                k, sep, v = item.partition("=")
                if not sep or not k.strip() or not v.strip():
                    raise UnitFileError(
                        f"{where} line {o.line}: MachineMetadata= wants key=value, got {item!r}"
                    )
                metadata.append((k.strip(), v.strip()))
        elif key == "Conflicts":
            conflicts.extend(value.split())
        elif key == "Replaces":
            replaces.extend(value.split())
        elif key == "Global":
            b = parse_bool(value)
            if b is None:
                raise UnitFileError(
                    f"{where} line {o.line}: Global= wants true/false (yes/1/on/t), got {value!r}"
                )
            global_ = b
            if not b:
                lines.pop("Global", None)
    _refuse_combinations(where, lines)
    return FleetOptions(
        machine_id=machine_id,
        machine_of=tuple(machine_of),
        machine_metadata=tuple(metadata),
        conflicts=tuple(conflicts),
        global_=global_,
        replaces=tuple(replaces),
        sandbox=sandbox,
    )


_INVALID_TOGETHER = [
    ("MachineID", "MachineOf"),
    ("MachineID", "Conflicts"),
    ("MachineID", "Global"),
    ("MachineID", "Replaces"),
    ("Global", "MachineOf"),
    ("Global", "Replaces"),
    ("Conflicts", "Replaces"),
]


def _refuse_combinations(where: str, lines: dict[str, int]) -> None:
    for a, b in _INVALID_TOGETHER:
        if a in lines and b in lines:
            first, second = sorted([(lines[a], a), (lines[b], b)])
            raise UnitFileError(
                f"{where} line {second[0]}: {second[1]}= cannot be combined with "
                f"{first[1]}= (line {first[0]})"
            )


def check_exec_lines(unit: UnitFile, name: str) -> None:
    """Refuse %-specifiers systemd would not know in the [Service] section."""
    for o in unit.options:
        if o.section == "Service":
            bad = check_specifiers(o.value)
            if bad:
                raise UnitFileError(
                    f"{name} line {o.line}: unknown specifier {bad!r} in {o.key}= (write %% for %)"
                )


def load(text: str, name: str) -> tuple[UnitFile, FleetOptions]:
    """Everything the CLI checks before a unit reaches etcd: name, syntax, options."""
    un = parse_name(name)
    unit = parse(text, name)
    # A template is checked as its first instance would be, so %i errors show up now.
    as_name = un.instantiate("0") if un.is_template else name
    opts = fleet_options(unit, as_name)
    check_exec_lines(unit, name)
    return unit, opts
