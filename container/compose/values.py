"""Reading Compose's value forms: strings or lists of words, lists or maps of pairs,
durations and counts, each refusal naming the key. Pure: no I/O."""

from __future__ import annotations

import re
import shlex
from typing import Any

from container.compose.errors import ComposeError

_GO_DURATION_RE = re.compile(r"(?P<n>\d+(?:\.\d+)?)(?P<unit>ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def words(value: Any, key: str) -> list[str]:
    """A command: a string split as a shell splits it, or a list of words."""
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ComposeError(key, f"cannot split {value[:60]!r} into words: {exc}") from None
    if isinstance(value, list):
        out = []
        for i, w in enumerate(value):
            if isinstance(w, bool) or not isinstance(w, str | int | float):
                raise ComposeError(f"{key}[{i}]", f"wants a string, got {_kind(w)}")
            out.append(str(w))
        return out
    raise ComposeError(key, f"wants a string or a list of strings, got {_kind(value)}")


def text(value: Any, key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ComposeError(key, f"wants a string, got {_kind(value)}")
    return str(value)


def scalar_text(value: Any) -> str:
    """A YAML scalar as Compose reads it in an environment or a label value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def pairs(value: Any, key: str) -> list[tuple[str, str | None]]:
    """``[K=V, K]`` or ``{K: V}``: (name, value) in order; a value-less name has None."""
    out: list[tuple[str, str | None]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, dict | list):
                raise ComposeError(f"{key}.{k}", f"wants a string, got {_kind(v)}")
            out.append((k, None if v is None else scalar_text(v)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ComposeError(f"{key}[{i}]", f"wants NAME=VALUE, got {_kind(item)}")
            name, eq, val = item.partition("=")
            out.append((name, val if eq else None))
    else:
        raise ComposeError(key, f"wants a list of NAME=VALUE or a mapping, got {_kind(value)}")
    return out


def names_list(value: Any, key: str) -> list[str]:
    """A string or a list of strings."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ComposeError(key, f"wants a string or a list of strings, got {_kind(value)}")


def duration(value: Any, key: str) -> float:
    """Compose's durations (Go's form: ``1m30s``, ``500ms``, ``10s``), or bare seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ComposeError(key, f"wants a duration, got {value}")
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise ComposeError(key, f"wants a duration such as 10s or 1m30s, got {_kind(value)}")
    s = value.strip()
    total, pos = 0.0, 0
    for m in _GO_DURATION_RE.finditer(s):
        if m.start() != pos:
            break
        total += float(m["n"]) * _GO_UNITS[m["unit"]]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ComposeError(key, f"wants a duration such as 10s or 1m30s, got {value!r}")
    return total


def count(value: Any, key: str, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high`` (a YAML int, or a string of digits)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise ComposeError(key, f"wants a whole number from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise ComposeError(key, f"wants a whole number from {low} to {high}, got {value}")
    return value


def mapping(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ComposeError(key, f"wants a mapping, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {value!r}"[:60]
