"""The unit-file model: systemd INI and fleet's [X-Fleet] options (names, templates and
specifiers: `vulcano.unitnames`).

Pure: no I/O. The CLI validates with it before anything reaches etcd; the engine and the
runner read the same parsed form, so a file means one thing everywhere.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from vulcano.endpoints import service_options
from vulcano.errors import UnitFileError
from vulcano.fleetoptions import (
    FALSE_WORDS,
    TRUE_WORDS,
    FleetOptions,
    fleet_options,
    glob_matches,
    parse_bool,
)
from vulcano.unitnames import check_specifiers, parse_name

__all__ = [
    "FALSE_WORDS",
    "TRUE_WORDS",
    "FleetOptions",
    "Option",
    "UnitFile",
    "check_exec_lines",
    "content_hash",
    "fleet_options",
    "glob_matches",
    "load",
    "metadata_matches",
    "parse",
    "parse_bool",
]

MAX_UNIT_FILE_BYTES = 256 * 1024
_SECTION_RE = re.compile(r"\[([^\[\]]+)\]")  # used with fullmatch
_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
_WHITESPACE = " \t\n\r"  # systemd's WHITESPACE (strstrip, and so the parser)
_LONE_CR_RE = re.compile(r"\r(?!\n|\Z)")  # a final \r is a line end to both


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


def _continues(raw: str) -> bool:
    """systemd's test: the line's very last character is an unescaped backslash.

    A backslash followed by spaces does not continue the line (conf-parser.c scans the
    raw line), and neither does an escaped one (``\\\\``): an odd run of trailing
    backslashes continues it. Only the newest piece of a continued line is looked at:
    the pieces before it end in the space their backslash became, which resets the scan.
    """
    return (len(raw) - len(raw.rstrip("\\"))) % 2 == 1


def _strip(s: str) -> str:
    """systemd's strstrip: only its WHITESPACE, not every Unicode space Python knows."""
    return s.strip(_WHITESPACE)


def _refuse_bad_text(text: str, name: str) -> None:
    if len(text.encode("utf-8", errors="surrogatepass")) > MAX_UNIT_FILE_BYTES:
        raise UnitFileError(f"{name}: larger than {MAX_UNIT_FILE_BYTES // 1024} KiB")
    if "\x00" in text:
        lineno = text[: text.index("\x00")].count("\n") + 1
        raise UnitFileError(f"{name} line {lineno}: contains a NUL byte")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnitFileError(f"{name}: not valid UTF-8 text") from None
    lone_cr = _LONE_CR_RE.search(text)
    if lone_cr:
        lineno = text[: lone_cr.start()].count("\n") + 1
        raise UnitFileError(
            f"{name} line {lineno}: a carriage return not followed by a newline, which "
            "systemd reads as a line break; end lines with \\n (or \\r\\n)"
        )


def parse(text: str, name: str = "unit file") -> UnitFile:
    """Parse systemd INI; raises UnitFileError naming the file and the offending line.

    Linear in the text's size (at most MAX_UNIT_FILE_BYTES), continued lines included.
    """
    _refuse_bad_text(text, name)
    options: list[Option] = []
    section: str | None = None
    joined: list[str] | None = None  # a continued line so far, backslashes turned to spaces
    start = 0
    lines = text.split("\n")
    for lineno, raw in enumerate(lines, start=1):
        raw = raw.removesuffix("\r")
        if _strip(raw).startswith(("#", ";")):
            continue  # systemd skips comments, inside a continuation too
        if joined is None:
            start = lineno
            joined = []
        if _continues(raw):
            joined.append(raw[:-1] + " ")
            continue
        joined.append(raw)
        line, joined = _strip("".join(joined)), None
        if line:
            section = _assignment(line, lines, start, section, name, options)
    if joined is not None and _strip("".join(joined)):
        # a backslash on the last line: systemd parses what it has
        line = _strip("".join(joined))
        if "=" in line and section is not None:
            key, value = line.split("=", 1)
            if _KEY_RE.fullmatch(_strip(key)):
                options.append(Option(section, _strip(key), _strip(value), start))
    if not options and not any(_SECTION_RE.fullmatch(_strip(ln)) for ln in lines):
        raise UnitFileError(f"{name}: empty unit file (no [Section] and no options)")
    return UnitFile(text=text, options=tuple(options))


def _assignment(
    line: str, lines: list[str], start: int, section: str | None, name: str, out: list[Option]
) -> str | None:
    """Read one logical line into ``out``; returns the section it leaves current."""
    if line.startswith("["):
        m = _SECTION_RE.fullmatch(line)
        if not m or not _strip(m.group(1)):
            raise UnitFileError(f"{name} line {start}: malformed section header {_show(line)}")
        return m.group(1)
    if "=" not in line:
        raise UnitFileError(
            f"{name} line {start}: expected Key=Value, got {_show(line)}"
            + _trailing_space_hint(lines, start)
        )
    key, value = line.split("=", 1)
    key = _strip(key)
    if not _KEY_RE.fullmatch(key):
        raise UnitFileError(f"{name} line {start}: invalid key {_show(key)}")
    if section is None:
        raise UnitFileError(f"{name} line {start}: {key}= comes before any [Section]")
    out.append(Option(section, key, _strip(value), start))
    return section


def _trailing_space_hint(lines: list[str], lineno: int) -> str:
    """Why a line that looks like a continuation is not one, if that is the story."""
    prev = lines[lineno - 2].removesuffix("\r") if lineno >= 2 else ""
    if _strip(prev).endswith("\\") and not _continues(prev):
        return (
            f" (line {lineno - 1} ends in a backslash followed by spaces, which systemd "
            "does not read as a continuation: remove the spaces after the backslash)"
        )
    return ""


def _show(s: str, limit: int = 60) -> str:
    return repr(s if len(s) <= limit else s[:limit] + "…")


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
    service_options(unit, as_name)
    check_exec_lines(unit, name)
    return unit, opts


def metadata_matches(requirements: Mapping[str, list[str]], metadata: Mapping[str, str]) -> bool:
    """fleet's MachineMetadata= match (``FleetOptions.metadata_requirements()``): every
    key required, any of its values, exact equality."""
    return all(metadata.get(k) in values for k, values in requirements.items())
