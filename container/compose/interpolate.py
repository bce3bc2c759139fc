"""Compose's variable interpolation, and the ``.env`` file it reads variables from.

In every string value (not in keys): ``$$`` is a ``$``; ``$VAR`` and ``${VAR}`` its value
(an unset one is an empty string, and said so); ``${VAR:-default}`` (unset or empty) and
``${VAR-default}`` (unset); ``${VAR:?message}`` and ``${VAR?message}`` refuse the file;
``${VAR:+other}`` and ``${VAR+other}``. Defaults may hold interpolations themselves.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from container.compose.errors import ComposeError

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOTENV_RE = re.compile(r"(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(?P<value>.*)")
MAX_DOTENV_LINES = 10_000


def read_dotenv(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines; ``#`` comments; quotes around a value are taken off."""
    out: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines()[:MAX_DOTENV_LINES], start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _DOTENV_RE.fullmatch(line)
        if m is None:
            raise ComposeError(f".env line {lineno}", f"expected KEY=VALUE, got {line[:60]!r}")
        out[m["key"]] = _dotenv_value(m["value"])
    return out


def _dotenv_value(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        inner = value[1:-1]
        return inner.replace("\\n", "\n").replace('\\"', '"') if value[0] == '"' else inner
    return re.sub(r"\s+#.*$", "", value).strip()


class Interpolation:
    """One pass over a document; ``unset`` collects the variables found without a value."""

    def __init__(self, variables: Mapping[str, str]) -> None:
        self.variables = variables
        self.unset: dict[str, list[str]] = {}

    def value(self, value: Any, path: str) -> Any:
        if isinstance(value, str):
            return self.text(value, path)
        if isinstance(value, dict):
            return {k: self.value(v, f"{path}.{k}" if path else k) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    def text(self, text: str, path: str) -> str:
        out: list[str] = []
        i = 0
        while i < len(text):
            c = text[i]
            if c != "$":
                out.append(c)
                i += 1
                continue
            nxt = text[i + 1 : i + 2]
            if nxt == "$":
                out.append("$")
                i += 2
            elif nxt == "{":
                end = _closing_brace(text, i + 2, path)
                out.append(self._braced(text[i + 2 : end], path))
                i = end + 1
            else:
                m = _NAME_RE.match(text, i + 1)
                if m is None:
                    raise ComposeError(
                        path,
                        f"invalid interpolation at {text[i : i + 10]!r}: write $$ for a "
                        "'$', or $VAR / ${VAR}",
                    )
                out.append(self._lookup(m.group(0), path))
                i = m.end()
        return "".join(out)

    def _lookup(self, name: str, path: str) -> str:
        if name in self.variables:
            return self.variables[name]
        self.unset.setdefault(name, []).append(path)
        return ""

    def _braced(self, body: str, path: str) -> str:
        m = _NAME_RE.match(body)
        if m is None:
            raise ComposeError(path, f"invalid interpolation ${{{body}}}: no variable name")
        name, rest = m.group(0), body[m.end() :]
        if not rest:
            return self._lookup(name, path)
        colon = rest.startswith(":")
        op, arg = (rest[1:2], rest[2:]) if colon else (rest[:1], rest[1:])
        if op not in ("-", "?", "+"):
            raise ComposeError(
                path,
                f"invalid interpolation ${{{body}}}: after the name comes :-, -, :?, ?, :+ or +",
            )
        value = self.variables.get(name)
        present = value is not None and (value != "" or not colon)
        if op == "-":
            return value if present and value is not None else self.text(arg, path)
        if op == "+":
            return self.text(arg, path) if present else ""
        if not present or value is None:
            why = self.text(arg, path) or f"{name} is required"
            raise ComposeError(path, f"${{{name}}} is not set: {why}")
        return value


def _closing_brace(text: str, start: int, path: str) -> int:
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ComposeError(path, f"invalid interpolation: '${{' without its '}}' in {text[:60]!r}")


def interpolate(value: Any, variables: Mapping[str, str], path: str = "") -> Any:
    """``value`` with every string interpolated (the unset variables are not reported)."""
    return Interpolation(variables).value(value, path)
