"""The conversion report: one row per key of the Compose file, and how it is shown."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum


class Result(StrEnum):
    CONVERTED = "converted"  # to the unit line(s) the detail names
    APPROXIMATED = "approximated"  # the detail says how it differs
    NOT_EXPRESSIBLE = "not expressible"  # the detail says why


@dataclass(frozen=True)
class Row:
    key: str  # the key's path: services.web.deploy.replicas, services.web.ports[0]
    result: Result
    detail: str


class Report:
    """Rows as the converter finds them; a key gets exactly one."""

    def __init__(self) -> None:
        self._rows: dict[str, Row] = {}

    def add(self, key: str, result: Result, detail: str) -> None:
        if key in self._rows:  # the converter's own bug, not the user's
            raise AssertionError(f"two report rows for {key}")
        self._rows[key] = Row(key, result, detail)

    def converted(self, key: str, detail: str) -> None:
        self.add(key, Result.CONVERTED, detail)

    def approximated(self, key: str, detail: str) -> None:
        self.add(key, Result.APPROXIMATED, detail)

    def not_expressible(self, key: str, detail: str) -> None:
        self.add(key, Result.NOT_EXPRESSIBLE, detail)

    def covers(self, key: str) -> bool:
        """Whether ``key`` or a key beneath it has a row."""
        return any(k == key or k.startswith((key + ".", key + "[")) for k in self._rows)

    def rows(self) -> tuple[Row, ...]:
        return tuple(self._rows.values())


def as_json(rows: tuple[Row, ...]) -> str:
    return json.dumps(
        [{"key": r.key, "result": str(r.result), "detail": r.detail} for r in rows], indent=2
    )
