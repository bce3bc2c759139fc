"""Words and values written into a unit so that systemd, and the built-in runner, read
back exactly what the Compose file said.

An Exec line's word: ``%`` is doubled (specifiers), ``$`` is doubled (variables), and a
word with anything but safe characters goes in double quotes with ``\\`` and ``"``
escaped; both systemd and POSIX shell words (the built-in runner's reading) agree on
that subset. A newline or another control character cannot be written that way and is
refused. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from container.compose.errors import ComposeError

# Stands for the instance specifier (%i) in a word the converter made (a container's
# name), so that quoting leaves it a specifier; a Compose file cannot hold it (U+E000
# is refused in its values).
INSTANCE = "\ue000"
_SAFE_RE = re.compile(r"[A-Za-z0-9_@%+=:,./$\ue000-]+")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _refuse_control(word: str, key: str) -> None:
    m = _CONTROL_RE.search(word)
    if m:
        raise ComposeError(
            key,
            f"{word[:40]!r} holds the control character {m.group(0)!r}, which a unit file "
            "cannot carry on one line",
        )


def _quoted(text: str) -> str:
    if text and _SAFE_RE.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def exec_word(word: str, key: str) -> str:
    """One argument of an Exec line."""
    _refuse_control(word, key)
    if word == ";":  # a lone semicolon separates commands on systemd's Exec lines
        return "\\;"
    return _quoted(word.replace("%", "%%").replace("$", "$$")).replace(INSTANCE, "%i")


def exec_line(words: Iterable[str], key: str) -> str:
    return " ".join(exec_word(w, key) for w in words)


def environment_value(name: str, value: str, key: str) -> str:
    """The value of an ``Environment=`` line: ``"NAME=value"`` (no variables expanded)."""
    _refuse_control(value, key)
    return _quoted(f"{name}={value.replace('%', '%%')}")
