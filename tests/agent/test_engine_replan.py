"""After a machine goes, the leader places only its units again, as a full plan would.

An in-process engine on three machines with real leases in a real etcd; one machine's
lease ends. The engine replans from its last plan's memo (agent/units/replan.py) and
etcd ends holding what the full planner decides for the machines left.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from agent.units import scheduler
from agent.units.engine import Engine
from vulcano.etcd import connect
from vulcano.keyspace import Keyspace
from vulcano.lab.cluster import Member
from vulcano.lab.poll import wait_for
from vulcano.lab.services import Etcd
from vulcano.records import DesiredState, UnitSource
from vulcano.registry import Registry

KS = Keyspace()
TTL = 3
UNIT = "[Service]\nExecStart=/bin/sleep 1000\n"


def _placed(store: Registry, count: int, gone: str = "") -> dict[str, list[str]] | None:
    """unit → machines, once ``count`` units are placed and none on ``gone``."""
    p = store.placements()
    if len(p) != count or any(gone in ms for ms in p.values()):
        return None
    return p


def test_a_lost_machines_units_are_replanned_where_a_full_plan_puts_them(
    etcd: Etcd, tmp_path: Path
) -> None:
    ids = sorted(f"m{i}{secrets.token_hex(5)}" for i in range(3))
    members = [Member(etcd.endpoint, m, tmp_path / m, ttl=TTL).start() for m in ids]
    client, engine_client = connect(etcd.endpoint), connect(etcd.endpoint)
    store = Registry(client)
    engine = Engine(engine_client, KS, "leader", lease_ttl=TTL)
    names = [f"u{i:02d}.service" for i in range(31)]
    try:
        store.submit([UnitSource(n, UNIT) for n in names], desired=DesiredState.LAUNCHED)
        engine.start()
        first = wait_for(lambda: _placed(store, len(names)), 15, "all placed")
        assert first is not None
        machines = store.machines()
        gone = members[1].machine_id
        members[1].close(revoke=True)  # its lease ends: etcd removes the record
        after = wait_for(
            lambda: _placed(store, len(names), gone), 15, "the lost machine's units placed again"
        )
        assert after is not None
        want = scheduler.plan(
            [scheduler.UnitRequest(n) for n in names],
            [m for m in machines if m.id != gone],
            {n: ms[0] for n, ms in first.items()},
        )
        assert {n: ms for n, ms in after.items()} == {n: [m] for n, m in want.targets.items()}
        assert engine.stats.replans == 1
        # the units that were elsewhere stayed where they were
        assert all(after[n] == ms for n, ms in first.items() if gone not in ms)
    finally:
        engine.stop()
        for m in members:
            m.close(revoke=True)
        client.close()
        engine_client.close()
