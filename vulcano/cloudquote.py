"""Quoting for cloud-config templates, and the errors of rendering them.

Every value that reaches a template passes through one of these filters, which makes it
a scalar of the target language; the environment's ``finalize`` refuses anything else
(`vulcano.cloudconfig` explains why). Split from cloudconfig so that module stays about
documents, this one about quoting.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jinja2

from vulcano.errors import VulcanoError

TEMPLATES = Path(
    os.environ.get(
        "VULCANO_CLOUD_CONFIG_TEMPLATES",
        Path(__file__).resolve().parent.parent / "templates" / "cloud-config",
    )
)


class CloudConfigError(VulcanoError):
    """Base of the cloud-config errors."""


class InputError(CloudConfigError, ValueError):
    """A user value we cannot put in a document; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class DocumentTooLarge(CloudConfigError, ValueError):
    """The rendered document is over the 64 KiB user-data limit."""


class InvalidDocument(CloudConfigError):
    """The rendered document failed a check; a bug in a template, never the user's."""


# --- quoting filters ------------------------------------------------------------------


class Quoted(str):
    """Text a quoting filter produced; the only thing a template may output."""

    __slots__ = ()


def _ascii_quoted(value: object, byte_escapes: bool) -> str:
    """``value`` in double quotes, pure ASCII: ``"`` and ``\\`` escaped, every other
    character outside printable ASCII as ``\\xNN`` (when ``byte_escapes``), ``\\uNNNN`` or
    ``\\UNNNNNNNN`` — the escapes YAML's and TOML's double-quoted strings share."""
    out = ['"']
    for ch in str(value):
        code = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif byte_escapes and code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _yaml_str(value: object) -> Quoted:
    """A YAML double-quoted scalar, pure ASCII, whatever ``value`` holds."""
    return Quoted(_ascii_quoted(value, byte_escapes=True))


def _json_str(value: object) -> Quoted:
    return Quoted(json.dumps(str(value)))


def _toml_str(value: object) -> Quoted:
    """A TOML basic string, pure ASCII, whatever ``value`` holds (a lone surrogate aside)."""
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in str(value)):
        raise InvalidDocument("a TOML string cannot hold a lone surrogate")
    return Quoted(_ascii_quoted(value, byte_escapes=False))


def _toml_int(value: object) -> Quoted:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidDocument(f"{str(value)[:40]!r} is not a whole number")
    return Quoted(str(value))


def _json_bool(value: object) -> Quoted:
    return Quoted(json.dumps(bool(value)))


_UNIT_WORD_RE = re.compile(r"[A-Za-z0-9._:/@+=-]+")


def _unit_word(value: object) -> Quoted:
    """One word of a systemd unit line: no spaces, quotes, specifiers or line breaks."""
    text = str(value)
    if not _UNIT_WORD_RE.fullmatch(text):
        raise InvalidDocument(f"{text[:40]!r} cannot stand in a unit file")
    return Quoted(text)


def _yaml_block(value: object, indent: int) -> Quoted:
    """A YAML literal block scalar of trusted multi-line text (a rendered unit file)."""
    lines = str(value).rstrip("\n").split("\n")
    for line in lines:
        if not line.isprintable():
            raise InvalidDocument("a literal block line holds a non-printable character")
    if lines[0][:1].isspace():
        raise InvalidDocument("a literal block may not start with whitespace")
    pad = " " * indent
    return Quoted("|\n" + "\n".join(pad + line if line else "" for line in lines))


def _finalize(value: object) -> object:
    if isinstance(value, Quoted):
        return value
    raise InvalidDocument(
        f"template outputs an unquoted value {str(value)[:40]!r}: pass it through a filter"
    )


def environment(templates: Path = TEMPLATES) -> jinja2.Environment:
    """The Jinja2 environment over templates/cloud-config/, quoting enforced."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - not HTML; every value is quoted by finalize's rule
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.filters.update(
        yaml_str=_yaml_str,
        yaml_block=_yaml_block,
        json_str=_json_str,
        json_bool=_json_bool,
        toml_str=_toml_str,
        toml_int=_toml_int,
        unit_word=_unit_word,
    )
    return env
