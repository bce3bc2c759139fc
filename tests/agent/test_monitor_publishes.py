"""The monitor on real etcd: samples on the machine lease, gone with it, never waking the engine."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.app import build
from agent.config import resolve
from agent.monitor.component import Monitor
from agent.units.runners.builtin import BuiltinRunner
from vulcano.etcd import connect
from vulcano.heartbeat import MachineSample
from vulcano.keyspace import Keyspace
from vulcano.lab import services
from vulcano.lab.cluster import Member, Node, kill_by_pid, pids_of
from vulcano.lab.poll import wait_for
from vulcano.records import DesiredState, UnitSource
from vulcano.registry import Registry

KS = Keyspace()


@pytest.fixture
def client(etcd: services.Etcd) -> Iterator[Any]:
    c = connect(etcd.endpoint)
    yield c
    c.close()


def sample_of(client: Any, machine_id: str) -> tuple[MachineSample | None, int]:
    value, meta = client.get(KS.sample(machine_id))
    if value is None:
        return None, 0
    return MachineSample.from_json(value), meta.lease_id


def test_an_agent_publishes_samples_on_its_machine_lease_and_deletes_them_on_stop(
    etcd: services.Etcd, client: Any, tmp_path: Path
) -> None:
    flags = {"etcd_endpoints": etcd.endpoint, "public_ip": "198.51.100.7", "machine_id": "m7",
             "state_dir": str(tmp_path), "ttl": "3", "overlay": "false",
             "sample_interval": "1"}  # fmt: skip
    agent = build(resolve(flags, environ={}), units=False)
    agent.start()
    try:
        first, lease = wait_for(lambda: sample_of(client, "m7")[0] and sample_of(client, "m7"),
                                5, "a first sample")  # fmt: skip
        assert first is not None
        assert lease == client.get(KS.machine("m7"))[1].lease_id != 0
        assert (first.machine_id, first.public_ip) == ("m7", "198.51.100.7")
        assert first.hostname and first.mem_total > first.mem_used > 0
        assert first.disk_total >= first.disk_used > 0
        assert first.load1 >= 0 and first.units == {}
        later = wait_for(
            lambda: (s := sample_of(client, "m7")[0]) is not None and s.at > first.at and s,
            5,
            "the next sample",
        )
        assert later.at > first.at and later.machine_id == "m7"
    finally:
        agent.shutdown()
    assert sample_of(client, "m7")[0] is None


def test_a_sample_goes_with_the_lease_when_the_machine_stops_refreshing_it(
    etcd: services.Etcd, client: Any, tmp_path: Path
) -> None:
    member = Member(etcd.endpoint, "m8", tmp_path, ttl=2, public_ip="198.51.100.8").start()
    monitor = Monitor(member, tmp_path, interval=1)
    try:
        assert monitor.publish_once()
        assert sample_of(client, "m8")[1] == member.lease_id()
        member.pause()  # a machine cut off: no refresh, and no sample written either
        monitor.stop_event.set()
        wait_for(lambda: sample_of(client, "m8")[0] is None, 6, "the sample gone with the lease")
        assert client.get(KS.machine("m8"))[0] is None
    finally:
        member.close(revoke=True)


def test_the_sample_lists_the_units_the_machine_reports_and_the_engine_stays_asleep(
    etcd: services.Etcd, client: Any, tmp_path: Path
) -> None:
    marker = "vmon-" + secrets.token_hex(4)
    text = f"[Service]\nExecStart=/bin/sh -c 'exec sleep 1000' {marker}\nTimeoutStopSec=3\n"
    node = Node(Member(etcd.endpoint, "m9", tmp_path / "m9", ttl=3), BuiltinRunner(tmp_path / "r"))
    node.start()
    monitor = Monitor(node.member, tmp_path, interval=1, units=node.units.reports.states)
    registry = Registry(client, KS)
    try:
        registry.submit([UnitSource("sleeper.service", text)])
        registry.set_desired(["sleeper.service"], DesiredState.LAUNCHED)
        monitor.start()
        wait_for(
            lambda: (
                (s := sample_of(client, "m9")[0]) is not None
                and s.units.get("sleeper.service") == "active/running"
            ),
            15,
            "the unit's state in the sample",
        )
        assert node.engine is not None
        wait_for(node.engine.is_leader.is_set, 5, "the engine leading")
        plans, reads = node.engine.stats.plans, node.engine.stats.reads
        seen = sample_of(client, "m9")[0]
        assert seen is not None
        wait_for(lambda: (s := sample_of(client, "m9")[0]) is not None and s.at >= seen.at + 2,
                 6, "two more samples")  # fmt: skip
        assert (node.engine.stats.plans, node.engine.stats.reads) == (plans, reads)
        # ...and it is asleep, not deaf: a change it watches wakes it at once
        registry.set_desired(["sleeper.service"], DesiredState.LOADED)
        wait_for(lambda: node.engine.stats.plans > plans, 10, "the engine woken by a unit change")
    finally:
        monitor.stop()
        registry.destroy(["sleeper.service"])
        wait_for(lambda: not pids_of(marker), 15, "the unit's process gone")
        kill_by_pid(pids_of(marker))
        node.stop(revoke=True)


class _Unregistered:
    """A machine between leases (lost one, not yet granted the next)."""

    machine_id = "m10"
    hostname = "h10"
    public_ip = "198.51.100.10"
    keyspace = KS

    def __init__(self, client: Any) -> None:
        self._client = client

    def etcd_client(self) -> Any:
        return self._client

    def lease_id(self) -> int:
        return 0


def test_without_a_lease_nothing_is_published(client: Any, tmp_path: Path) -> None:
    monitor = Monitor(_Unregistered(client), tmp_path, interval=1)
    assert not monitor.publish_once()
    assert sample_of(client, "m10")[0] is None
