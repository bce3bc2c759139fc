"""What the unit engine holds in memory while it leads, and counts as it works."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from agent.units.replan import Memo
from vulcano.records import DesiredState, Machine, UnitSpec


@dataclass
class EngineStats:
    plans: int = 0
    replans: int = 0  # of the plans, those made from the last one's memo (agent/units/replan.py)
    plan_seconds: float = 0.0
    txns: int = 0
    failed_txns: int = 0
    refused_as_deposed: int = 0  # writes etcd refused because another term had begun
    reads: int = 0


@dataclass
class World:
    machines: dict[str, Machine] = field(default_factory=dict)
    specs: dict[str, UnitSpec] = field(default_factory=dict)
    # (machine, unit) → (assignment JSON, lease id)
    placed: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)  # reasons this leader wrote
    departed: dict[str, float] = field(default_factory=dict)  # machine → grace ends at
    restarting: set[str] = field(default_factory=set)  # machines announcing a restart
    decommissioned: set[str] = field(default_factory=set)  # machines removed on purpose
    memo: Memo | None = None  # the last plan, to replan from (agent/units/replan.py)


def parse_spec(raw: bytes, old: UnitSpec | None) -> UnitSpec:
    """Parse a unit spec; its options are the old spec's when the content is the same
    (a start or stop changes only the desired state: no need to parse them again)."""
    d = json.loads(raw)
    if old is None or old.hash != d["hash"] or old.name != d["name"]:
        return UnitSpec.from_json(raw)
    return UnitSpec(
        d["name"], d["hash"], DesiredState(d["desired"]), old.options, int(d.get("starts", 0))
    )
