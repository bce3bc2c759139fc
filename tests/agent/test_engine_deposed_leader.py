"""A deposed engine leader's writes never land: etcd refuses them on the leader key's compare.

In-process engines on real machine leases in a real etcd. The old leader's view is
taken while it leads; then it is deposed the way a frozen process is (its leadership
lease ends in etcd, another engine takes over and the cluster changes); then the old
leader executes the plan its stale view makes. Every one of those writes is refused,
the old leader knows it is no longer the leader, and etcd holds only the new leader's
placements. (The whole-agent version, frozen with SIGSTOP, is in
test_engine_faults_netns.py.)
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.units import plan
from agent.units.engine import Engine
from agent.units.world import World as _World
from vulcano.etcd import connect
from vulcano.keyspace import Keyspace
from vulcano.lab.cluster import Member
from vulcano.lab.poll import wait_for
from vulcano.lab.services import Etcd
from vulcano.records import DesiredState, UnitSource
from vulcano.registry import Registry
from vulcano.watch import snapshot

KS = Keyspace()
TTL = 3
UNIT = "[Service]\nExecStart=/bin/sleep 1000\n"


@pytest.fixture
def members(etcd: Etcd, tmp_path: Path) -> Iterator[list[Member]]:
    """Two machines on real leases (no runners: only the engines' writes matter here)."""
    ids = sorted(f"m{i}{secrets.token_hex(5)}" for i in range(2))
    started = [Member(etcd.endpoint, m, tmp_path / m, ttl=TTL).start() for m in ids]
    try:
        yield started
    finally:
        for m in started:
            m.close(revoke=True)


def _view(engine: Engine) -> _World:
    """What a leader holds in memory: machines, units and placements at one revision."""
    world = _World()
    prefixes = [KS.decommissioned, KS.machines_restarting, KS.machines, KS.units, KS.schedule]
    _, parts = snapshot(engine.client, prefixes)
    for part in parts:
        engine._apply(world, part)
    return world


def _schedule(store: Registry) -> dict[str, list[str]]:
    return {u: sorted(ms) for u, ms in store.placements().items()}


def test_a_deposed_leaders_stale_plan_is_refused_and_it_knows_it_lost(
    etcd: Etcd, members: list[Member]
) -> None:
    clients = [connect(etcd.endpoint) for _ in range(3)]
    store = Registry(clients[2])
    old = Engine(clients[0], KS, "old-leader", lease_ttl=TTL)
    new = Engine(clients[1], KS, "new-leader", lease_ttl=TTL)
    try:
        store.submit([UnitSource(f"u{i}.service", UNIT) for i in range(4)])
        store.set_desired([f"u{i}.service" for i in range(4)], DesiredState.LAUNCHED)
        assert old._campaign()
        stale = _view(old)  # u0..u3 launched, nothing placed yet
        assert plan.plan(stale.specs, stale.machines, {}, {}).assignments  # it would write

        # deposed as a frozen leader is: its lease ends, another engine takes over
        term = old._leader_rev
        clients[2].revoke_lease(old._lease.id)
        new.start()
        wait_for(new.is_leader.is_set, 15, "the new leader")
        # the cluster moves on: two units go, one stops, a new one comes
        store.destroy(["u0.service", "u1.service"])
        store.set_desired(["u2.service"], DesiredState.INACTIVE)
        store.submit([UnitSource("late.service", UNIT)])
        store.set_desired(["late.service"], DesiredState.LAUNCHED)
        settled = wait_for(
            lambda: (s := _schedule(store)) and set(s) == {"u3.service", "late.service"} and s,
            15,
            "the new leader's placements",
        )
        revision_before = snapshot(clients[2], [])[0]

        old._reconcile(stale)  # what the old leader does with its view when it runs again

        assert _schedule(store) == settled
        assert snapshot(clients[2], [])[0] == revision_before  # not one key written
        assert old.stats.refused_as_deposed >= 1
        assert old._lost.is_set()
        value, meta = clients[2].get(KS.engine_leader)
        assert value == b"new-leader" and meta.create_revision != term
    finally:
        new.stop()
        old._resign()
        for c in clients:
            c.close()


def test_a_leader_elected_again_is_not_ended_by_its_last_terms_keepalive(etcd: Etcd) -> None:
    client = connect(etcd.endpoint)
    engine = Engine(client, KS, "twice", lease_ttl=TTL)
    try:
        assert engine._campaign()
        first = [t for t in threading.enumerate() if t.name == "engine-lease"]
        engine._resign()  # the term ends (a refused write, a lapse) ...
        assert engine._campaign()  # ... and the same engine wins the next one at once
        for t in first:
            t.join(timeout=2 * TTL)  # the last term's keep-alive wakes and ends
            assert not t.is_alive()
        assert not engine._lost.is_set()
        _, meta = client.get(KS.engine_leader)
        assert meta is not None and meta.lease_id == engine._lease.id
        assert client.get_lease_info(engine._lease.id).TTL > 0
    finally:
        engine._resign()
        client.close()
