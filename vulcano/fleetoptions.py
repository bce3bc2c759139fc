"""fleet's [X-Fleet] options (and Vulcano's [X-Vulcano]) read the way fleet read them.

fleet's reading, from its job and unit packages: a value that starts and ends with ``"``
is a list of quoted words (``Conflicts="a*" "b*"``), quotes stripped; the deprecated
spellings ``X-ConditionMachineID``, ``X-ConditionMachineBootID``, ``X-ConditionMachineOf``,
``X-ConditionMachineMetadata`` and ``X-Conflicts`` still count; for the machine pin the
first ``MachineID=`` wins, then the first ``X-ConditionMachineID=``, then the boot id;
the lists (MachineOf, Conflicts, MachineMetadata) take old and new spellings together;
the last ``Global=`` wins. Where fleet silently read a typo as something else (a
``Global=`` word it did not know meant false, a malformed ``MachineMetadata=`` entry was
dropped) Vulcano refuses the line instead; docs/fleet.md lists every such choice.

Pure: no I/O.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from vulcano.errors import UnitFileError, UnitNameError
from vulcano.unitnames import MAX_NAME_LENGTH, check_specifiers, expand_specifiers, parse_name

if TYPE_CHECKING:
    from vulcano.units import Option, UnitFile

# systemd's booleans (parse_boolean); fleet's Global= knew only FLEET_TRUE_WORDS as true.
TRUE_WORDS = frozenset({"true", "yes", "1", "on", "t", "y"})
FALSE_WORDS = frozenset({"false", "no", "0", "off", "f", "n"})
FLEET_TRUE_WORDS = frozenset({"true", "yes", "1", "on", "t"})
FLEET_KEYS = {
    "MachineID": "MachineID",
    "MachineOf": "MachineOf",
    "MachineMetadata": "MachineMetadata",
    "Conflicts": "Conflicts",
    "Global": "Global",
    "Replaces": "Replaces",
    # fleet's deprecated spellings, still found in old unit files
    "X-ConditionMachineID": "MachineID",
    "X-ConditionMachineBootID": "MachineID",
    "X-ConditionMachineOf": "MachineOf",
    "X-ConditionMachineMetadata": "MachineMetadata",
    "X-Conflicts": "Conflicts",
}
# fleet's order of preference for the machine pin: the first value of the first key found
_MACHINE_ID_KEYS = ("MachineID", "X-ConditionMachineID", "X-ConditionMachineBootID")
_VULCANO_KEYS = {"Sandbox", "Port", "Check", "CheckRestart"}  # services: vulcano/endpoints.py
# Size limits, so placing a unit costs a bounded time: a glob is matched against unit
# names (at most MAX_NAME_LENGTH characters), so a longer one has nothing to say; and a
# unit names at most MAX_LIST_ENTRIES globs, peers or metadata entries per list.
MAX_GLOB_CHARS = MAX_NAME_LENGTH
MAX_LIST_ENTRIES = 64


def glob_matches(pattern: str, name: str) -> bool:
    """fleet's Conflicts=/Replaces= globs: * ? [..], case-sensitive, whole name."""
    return compile_glob(pattern).match(name) is not None


def compile_glob(pattern: str) -> re.Pattern[str]:
    """A glob as a regular expression (fnmatch's translation: no exponential backtracking).

    Not cached here: FleetOptions keeps its own compiled globs, so the number of distinct
    globs in a cluster cannot defeat a shared cache.
    """
    return re.compile(fnmatch.translate(pattern))


def parse_bool(value: str) -> bool | None:
    """systemd's reading of a boolean; None for a word it does not know."""
    v = value.strip().lower()
    if v in TRUE_WORDS:
        return True
    if v in FALSE_WORDS:
        return False
    return None


def split_quoted(value: str) -> tuple[list[str], bool] | None:
    """fleet's multi-value reading: ``"a" "b c"`` → ``["a", "b c"]``, quotes stripped.

    Returns (words, quoted); a value not wrapped in quotes is one word, as in fleet.
    None: unbalanced quotes (fleet kept them as part of the value).
    """
    if value.count('"') % 2:
        return None
    if not (len(value) >= 2 and value.startswith('"') and value.endswith('"')):
        return [value], False
    words: list[str] = []
    current: list[str] = []
    inside = False
    for ch in value:
        if ch == '"':
            inside = not inside
        elif ch == " " and not inside:
            words.append("".join(current))
            current = []
        else:
            current.append(ch)
    words.append("".join(current))
    return [w for w in words if w != ""], True


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

    @cached_property
    def _conflict_globs(self) -> tuple[tuple[str, re.Pattern[str]], ...]:
        return tuple((p, compile_glob(p)) for p in self.conflicts)

    @cached_property
    def _replace_globs(self) -> tuple[re.Pattern[str], ...]:
        return tuple(compile_glob(p) for p in self.replaces)

    def conflicting_glob(self, name: str) -> str | None:
        """The first Conflicts= glob that matches unit ``name``, if any."""
        return next((p for p, rx in self._conflict_globs if rx.match(name)), None)

    def replaces_name(self, name: str) -> bool:
        """Whether a Replaces= glob matches unit ``name``."""
        return any(rx.match(name) for rx in self._replace_globs)

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


@dataclass(frozen=True)
class _Value:
    key: str  # as written (a deprecated spelling stays deprecated here)
    words: tuple[str, ...]
    quoted: bool
    line: int


def _sandbox(unit: UnitFile, where: str) -> bool:
    sandbox = False
    for o in unit.options:
        if o.section != "X-Vulcano":
            continue
        if o.key not in _VULCANO_KEYS:
            raise UnitFileError(
                f"{where} line {o.line}: unknown [X-Vulcano] option {o.key}= "
                f"(known: {', '.join(sorted(_VULCANO_KEYS))})"
            )
        if o.key != "Sandbox":
            continue
        b = parse_bool(o.value)
        if b is None:
            raise UnitFileError(f"{where} line {o.line}: Sandbox= wants a boolean, got {o.value!r}")
        sandbox = b
    return sandbox


def _read(o: Option, where: str, name: str) -> _Value:
    if o.key not in FLEET_KEYS:
        raise UnitFileError(
            f"{where} line {o.line}: unknown [X-Fleet] option {o.key}= "
            "(known: MachineID, MachineOf, MachineMetadata, Conflicts, Global, Replaces)"
        )
    bad = check_specifiers(o.value)
    if bad:
        raise UnitFileError(f"{where} line {o.line}: unknown specifier {bad!r} in {o.key}=")
    value = expand_specifiers(o.value, name, fleet_only=True).replace("%%", "%")
    split = split_quoted(value)
    if split is None:
        raise UnitFileError(
            f"{where} line {o.line}: {o.key}= has an unbalanced '\"'; fleet reads a value "
            'wrapped in quotes as quoted words ("a" "b"), write it that way or without quotes'
        )
    words, quoted = split
    return _Value(o.key, tuple(words), quoted, o.line)


def fleet_options(unit: UnitFile, name: str) -> FleetOptions:
    """The [X-Fleet] and [X-Vulcano] options of ``unit`` as instance ``name``; validated."""
    parse_name(name)
    where = name
    sandbox = _sandbox(unit, where)
    values = [_read(o, where, name) for o in unit.options if o.section == "X-Fleet"]
    by_key: dict[str, list[_Value]] = {}
    for v in values:
        if v.key == "Global" or (v.words and v.words != ("",)):
            by_key.setdefault(v.key, []).append(v)
    lines: dict[str, int] = {}

    machine_id = _machine_id(by_key, where, lines)
    machine_of: list[str] = []
    for v in by_key.get("X-ConditionMachineOf", []) + by_key.get("MachineOf", []):
        lines.setdefault("MachineOf", v.line)
        for item in (w for word in v.words for w in word.split()):
            try:
                parse_name(item)
            except UnitNameError as exc:
                raise UnitFileError(f"{where} line {v.line}: MachineOf= {exc}") from None
            if item == name:
                raise UnitFileError(f"{where} line {v.line}: MachineOf= names the unit itself")
            machine_of.append(item)
    metadata: list[tuple[str, str]] = []
    for v in by_key.get("X-ConditionMachineMetadata", []) + by_key.get("MachineMetadata", []):
        lines.setdefault("MachineMetadata", v.line)
        metadata.extend(_metadata(v, where))
    conflicts: list[str] = []
    for v in by_key.get("X-Conflicts", []) + by_key.get("Conflicts", []):
        lines.setdefault("Conflicts", v.line)
        conflicts.extend(w for word in v.words for w in word.split())
    replaces: list[str] = []
    for v in by_key.get("Replaces", []):
        lines.setdefault("Replaces", v.line)
        replaces.extend(w for word in v.words for w in word.split())
    global_ = _global(by_key.get("Global", []), where, lines)
    _refuse_oversized(where, lines, machine_of=machine_of, metadata=metadata)
    _refuse_oversized(where, lines, Conflicts=conflicts, Replaces=replaces)
    _refuse_combinations(where, lines)
    _refuse_self_contradiction(where, lines, machine_of, conflicts, replaces)
    return FleetOptions(
        machine_id=machine_id,
        machine_of=tuple(machine_of),
        machine_metadata=tuple(metadata),
        conflicts=tuple(conflicts),
        global_=global_,
        replaces=tuple(replaces),
        sandbox=sandbox,
    )


def _machine_id(by_key: dict[str, list[_Value]], where: str, lines: dict[str, int]) -> str | None:
    for key in _MACHINE_ID_KEYS:
        found = by_key.get(key)
        if not found:
            continue
        first = found[0]
        if key == "X-ConditionMachineBootID":
            raise UnitFileError(
                f"{where} line {first.line}: X-ConditionMachineBootID= names a boot id, "
                "which changes on every reboot (fleet compared it with machine ids, so such "
                "a unit never started); write MachineID=<machine id> instead"
            )
        words = [w for word in first.words for w in word.split()]
        if len(words) != 1:
            raise UnitFileError(f"{where} line {first.line}: MachineID= takes one machine id")
        lines["MachineID"] = first.line
        return words[0]
    return None


def _metadata(v: _Value, where: str) -> list[tuple[str, str]]:
    if v.quoted:
        items = list(v.words)
    else:
        # Vulcano's leniency: unquoted space-separated pairs (fleet dropped such a line)
        try:
            items = shlex.split(v.words[0])
        except ValueError as exc:
            raise UnitFileError(f"{where} line {v.line}: MachineMetadata= {exc}") from None
    out: list[tuple[str, str]] = []
    for item in items:
        parts = item.split("=")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise UnitFileError(
                f"{where} line {v.line}: MachineMetadata= wants key=value (one '=', neither "
                f"side empty), got {item!r}; fleet silently ignored such an entry, which "
                "would let the unit run on any machine"
            )
        out.append((parts[0].strip(), parts[1].strip()))
    return out


def _global(found: list[_Value], where: str, lines: dict[str, int]) -> bool:
    global_ = False
    for v in found:  # the last Global= wins, as in fleet
        word = " ".join(v.words).strip().lower()
        if word == "":
            global_ = False  # an empty assignment resets, as systemd's lists do
            lines.pop("Global", None)
        elif word in FLEET_TRUE_WORDS:
            global_ = True
            lines["Global"] = v.line
        elif word in FALSE_WORDS:
            global_ = False
            lines.pop("Global", None)
        else:
            raise UnitFileError(
                f"{where} line {v.line}: Global= wants true/yes/1/on/t or false/no/0/off/f, "
                f"got {' '.join(v.words)!r} (fleet read any other word as false)"
            )
    return global_


def _refuse_oversized(where: str, lines: dict[str, int], **lists: list[Any]) -> None:
    for key, entries in lists.items():
        key = {"machine_of": "MachineOf", "metadata": "MachineMetadata"}.get(key, key)
        if len(entries) > MAX_LIST_ENTRIES:
            raise UnitFileError(
                f"{where} line {lines[key]}: more than {MAX_LIST_ENTRIES} {key}= entries"
            )
        if key in ("Conflicts", "Replaces"):
            for glob in entries:
                if len(glob) > MAX_GLOB_CHARS:
                    raise UnitFileError(
                        f"{where} line {lines[key]}: {key}= glob longer than "
                        f"{MAX_GLOB_CHARS} characters (unit names are at most that long)"
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


def _refuse_self_contradiction(
    where: str,
    lines: dict[str, int],
    machine_of: list[str],
    conflicts: list[str],
    replaces: list[str],
) -> None:
    """A unit that must sit beside a peer it also conflicts with or replaces never fits.

    fleet left such a unit unscheduled forever (or moving in circles); Vulcano says so.
    """
    for key, patterns in (("Conflicts", conflicts), ("Replaces", replaces)):
        for peer in machine_of:
            hit = next((p for p in patterns if glob_matches(p, peer)), None)
            if hit is not None:
                raise UnitFileError(
                    f"{where} line {lines[key]}: {key}={hit} matches {peer}, which "
                    f"MachineOf= (line {lines['MachineOf']}) wants on the same machine; "
                    f"drop one of them"
                )
