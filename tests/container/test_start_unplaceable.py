"""`vulcano start` of a unit no machine can take, on a real etcd with a real engine: it
stops waiting and prints the engine's reason (fleetctl's start hung forever on it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.container.conftest import Invoke
from vulcano.lab.cluster import Node, nodes
from vulcano.lab.services import Etcd

EU_ONLY = "[Service]\nExecStart=/bin/true\n\n[X-Fleet]\nMachineMetadata=region=eu\n"


@pytest.fixture
def two(etcd: Etcd, tmp_path: Path) -> Iterator[list[Node]]:
    with nodes(etcd.endpoint, tmp_path / "nodes", ["ma", "mb"], ttl=3) as ns:
        yield ns


def test_start_of_an_unplaceable_unit_ends_with_the_reason(
    two: list[Node], vulcano: Invoke, tmp_path: Path
) -> None:
    unit = tmp_path / "eu.service"
    unit.write_text(EU_ONLY)
    r = vulcano("start", "--block-timeout", "60", str(unit))
    assert r.exit_code == 1, r.output
    assert "timed out" not in r.output  # it stopped at the reason, not at the 60 s timeout
    assert (
        "unit eu.service cannot be placed: no machine matches MachineMetadata region=eu" in r.output
    )
    listed = vulcano("list-unit-files", "--no-legend", "--fields", "unit,dstate")
    assert listed.output == "eu.service\tlaunched\n"  # it stays asked for
