"""Compose files converted into unit files: `vulcano compose convert|up|down`.

    loaded = load_file(Path("docker-compose.yml"), os.environ)
    conversion = convert(loaded, Options(project="shop", runtime=Runtime("podman")))
    conversion.files      # (name, text) of each unit file, each loaded by vulcano.units
    conversion.report     # a row for every key: converted, approximated, not expressible

Versions: ``2``/``2.x``, ``3``/``3.x`` and the unversioned Compose Specification, read
alike (v2's ``scale`` and v3's ``deploy.replicas`` both make replicas). Reading is
bounded (`loading`); bad input is a ComposeError naming the key path. What becomes of
each key, and how services find each other, is in `project`, `service`, `mounts`,
`deploy` and `render`.
"""

from __future__ import annotations

from dataclasses import replace

from container.compose.errors import ComposeError
from container.compose.loading import Loaded, load_file, load_text
from container.compose.project import Conversion, Options, ServiceUnits, UnitFileOut, project_name
from container.compose.project import convert as _convert
from container.compose.render import RUNTIMES, Runtime
from container.compose.report import Result, Row

__all__ = [
    "RUNTIMES",
    "ComposeError",
    "Conversion",
    "Loaded",
    "Options",
    "Result",
    "Row",
    "Runtime",
    "ServiceUnits",
    "UnitFileOut",
    "convert",
    "load_file",
    "load_text",
    "project_name",
]


def convert(loaded: Loaded, options: Options) -> Conversion:
    """The units and the report of a loaded Compose file."""
    return _convert(
        loaded.data,
        replace(options, files=loaded.files, unset=loaded.unset, variables=loaded.variables),
    )
