"""Unit files as the operator gives them: paths or names on the command line, uploads.

Only the names are checked here (the content is checked when it is submitted, by
`vulcano.units`), so a bad argument is refused before the cluster is asked anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from container.services.errors import UnitSourceError
from vulcano import errors, unitnames
from vulcano.records import UnitSource


def from_arguments(args: Iterable[str]) -> list[UnitSource]:
    """Arguments are unit files (a path that exists or has a '/') or unit names.

    Names are fleetctl's: ``foo`` and ``units/foo`` both mean ``foo.service``.
    """
    out: list[UnitSource] = []
    for arg in args:
        if os.path.isfile(arg) or "/" in arg:
            path = Path(arg)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise UnitSourceError(f"{arg}: {exc.strerror}") from None
            out.append(_decoded(unitnames.mangle(path.name), data, shown_as=arg))
        else:
            out.append(UnitSource(unitnames.mangle(arg)))
    _check_names(out)
    return out


def from_bytes(name: str, data: bytes) -> UnitSource:
    """A unit file received as bytes (an upload): it must be UTF-8 and well named."""
    source = _decoded(name, data, shown_as=name)
    _check_names([source])
    return source


def names(args: Iterable[str]) -> list[str]:
    """The unit names that arguments (files or names) stand for."""
    return [source.name for source in from_arguments(args)]


def _decoded(name: str, data: bytes, shown_as: str) -> UnitSource:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UnitSourceError(f"{shown_as}: not UTF-8 text") from None
    return UnitSource(name, text)


def _check_names(sources: list[UnitSource]) -> None:
    for source in sources:
        try:
            unitnames.parse_name(source.name)
        except errors.UnitNameError as exc:
            raise UnitSourceError(str(exc)) from None
