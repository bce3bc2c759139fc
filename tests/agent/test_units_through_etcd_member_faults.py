"""Engines and machine units on a real three-member etcd keep every unit running, never
restarted, through a member's death and two etcd leader changes (fleet stopped units on an
etcd leader change)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vulcano import etcd as vulcano_etcd
from vulcano.lab.cluster import Node, kill_by_pid, nodes, pids_of, running_where
from vulcano.lab.poll import wait_for
from vulcano.lab.services import EtcdCluster
from vulcano.records import DesiredState, UnitSource
from vulcano.registry import Registry

NAMES = [f"keep{i}.service" for i in range(4)]


@pytest.fixture
def marker() -> str:
    return "vtest-" + secrets.token_hex(4)


@pytest.fixture
def store(etcd_members: EtcdCluster) -> Iterator[Registry]:
    client = vulcano_etcd.connect(etcd_members.endpoints)
    yield Registry(client)
    client.close()


@pytest.fixture
def machines(
    etcd_members: EtcdCluster, tmp_path: Path, marker: str, store: Registry
) -> Iterator[list[Node]]:
    ids = sorted(f"m{i}{secrets.token_hex(5)}" for i in range(3))
    try:
        with nodes(etcd_members.endpoints, tmp_path, ids, ttl=5) as ns:
            yield ns
            store.destroy(list(store.specs()))
            wait_for(lambda: not pids_of(marker), 20, "every unit process gone")
    finally:
        kill_by_pid(pids_of(marker))


def _sleeper(marker: str) -> str:
    return f"[Service]\nExecStart=/bin/sh -c 'sleep 1000; :' {marker}-%n\nTimeoutStopSec=3\n"


def _running(store: Registry, marker: str) -> dict[str, tuple[str, float, tuple[int, ...]]]:
    """unit → (machine, since, process ids) for every unit, as it runs now."""
    where = running_where(store, NAMES)
    assert where is not None, store.states()
    states = store.states()
    return {n: (where[n], states[n].since, tuple(pids_of(f"{marker}-{n}"))) for n in NAMES}


def _leases_refreshed_since(machines: list[Node], moment: float) -> bool:
    return all(n.member.lease_deadline() - n.member.ttl > moment for n in machines)


def _engines_led(machines: list[Node]) -> bool:
    return any(n.engine is not None and n.engine.is_leader.is_set() for n in machines)


def test_units_keep_running_unrestarted_through_member_death_and_leader_changes(
    etcd_members: EtcdCluster, machines: list[Node], store: Registry, marker: str
) -> None:
    store.submit([UnitSource(n, _sleeper(marker)) for n in NAMES])
    store.set_desired(NAMES, DesiredState.LAUNCHED)
    wait_for(lambda: running_where(store, NAMES), 30, "every unit running")
    wait_for(lambda: all(pids_of(f"{marker}-{n}") for n in NAMES), 30, "every process up")
    before = _running(store, marker)

    leader = etcd_members.leader()
    follower = next(m for m in etcd_members.members if m is not leader)
    etcd_members.move_leader(follower)  # leader change 1, every member alive
    moved = time.monotonic()
    wait_for(lambda: _leases_refreshed_since(machines, moved), 30, "leases refreshed")
    assert _running(store, marker) == before

    etcd_members.leader().kill()  # a member dies, and with it the leader: change 2
    killed = time.monotonic()
    etcd_members.leader()
    wait_for(lambda: _leases_refreshed_since(machines, killed), 30, "leases refreshed")
    wait_for(lambda: _engines_led(machines), 30, "an engine leading")
    # one more engine pass over the cluster after the faults, then look again
    store.submit([UnitSource("after.service", _sleeper(marker))])
    store.set_desired(["after.service"], DesiredState.LAUNCHED)
    wait_for(lambda: running_where(store, ["after.service"]), 30, "a unit started after")
    assert _running(store, marker) == before
    assert len(pids_of(marker)) == len(NAMES) + 1
