"""summarize() on real etcd: machines up, late, down and decommissioned, with their units."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import etcd3
import pytest

from agent.monitor.component import Monitor
from container.services import monitor
from container.services.cluster import Cluster
from vulcano.heartbeat import ClusterSummary, MachineHealth, MachineSample, MachineSummary
from vulcano.keyspace import Keyspace
from vulcano.lab.cluster import Member
from vulcano.lab.poll import wait_for
from vulcano.lab.services import Etcd
from vulcano.records import UnitState

KS = Keyspace()
INTERVAL = 10.0
GiB = 1024**3


@pytest.fixture
def members(etcd: Etcd, tmp_path: Path) -> Iterator[dict[str, Member]]:
    """Machines with records on live leases, as their agents keep them."""
    started: dict[str, Member] = {}

    def start(mid: str) -> Member:
        started[mid] = Member(etcd.endpoint, mid, tmp_path / mid, ttl=3,
                              public_ip=f"192.0.2.{len(started) + 1}").start()  # fmt: skip
        return started[mid]

    for mid in ("up1", "late1", "stale1", "fresh1", "dec1"):
        start(mid)
    yield started
    for m in started.values():
        m.close(revoke=True)


def publish(member: Member, age: float, **kw: Any) -> MachineSample:
    """A sample ``age`` seconds old on the member's lease, as its monitor writes it."""
    sample = MachineSample(member.machine_id, time.time() - age, member.machine_id,
                           member.public_ip, mem_total=4 * GiB, mem_used=GiB,
                           disk_total=100 * GiB, disk_used=25 * GiB, **kw)  # fmt: skip
    member.client.put(KS.sample(member.machine_id), sample.to_json(), lease=member.lease_id())
    return sample


def by_id(summary: ClusterSummary) -> dict[str, MachineSummary]:
    return {m.machine_id: m for m in summary.machines}


def test_each_machine_stands_by_its_latest_sample_or_what_it_left_behind(
    etcd: Etcd, members: dict[str, Member], cluster: Cluster
) -> None:
    client: Any = members["up1"].client
    up = publish(members["up1"], 1, load1=0.75, cpu_percent=42.5)
    publish(members["late1"], 2 * INTERVAL)  # within the grace of 3 intervals
    publish(members["stale1"], 4 * INTERVAL)  # its agent lives, its sampler does not
    publish(members["dec1"], 1)
    client.put(KS.machine_decommissioned("dec1"), json.dumps({"machine_id": "dec1"}))
    # gone1: no record, no sample, but its subnet lease; placed1: only placements
    subnet = {"machine_id": "gone1", "public_ip": "192.0.2.99", "backend_type": "vxlan",
              "vtep_mac": "02:00:00:00:00:99"}  # fmt: skip
    client.put(KS.subnet("10.244.7.0/24"), json.dumps(subnet))
    client.put(KS.assignment("placed1", "db.service"), "{}")
    # restart1: its agent is restarting (no record, no sample for a few seconds)
    client.put(KS.assignment("restart1", "web@3.service"), "{}")
    client.put(KS.machine_restarting("restart1"), "restarting")
    # an old marker of a machine long gone: decommissioned, not down
    client.put(KS.machine_decommissioned("old1"), json.dumps({"machine_id": "old1"}))

    now = time.time()
    summary = monitor.summarize(cluster, "prod", seq=4, interval=INTERVAL, now=now)
    found = by_id(summary)
    assert {mid: m.health for mid, m in found.items()} == {
        "up1": MachineHealth.UP,
        "late1": MachineHealth.LATE,
        "stale1": MachineHealth.DOWN,
        "fresh1": MachineHealth.UP,  # no sample yet: its lease was just refreshed
        "dec1": MachineHealth.DECOMMISSIONED,
        "gone1": MachineHealth.DOWN,
        "placed1": MachineHealth.DOWN,
        "restart1": MachineHealth.LATE,
        "old1": MachineHealth.DECOMMISSIONED,
    }
    assert found["up1"] == MachineSummary("up1", MachineHealth.UP, up.at, "up1", "192.0.2.1",
                                          0.75, 42.5, 25.0, 25.0)  # fmt: skip
    assert found["gone1"].last_seen == 0.0
    assert (summary.cluster, summary.seq, summary.at, summary.interval) == ("prod", 4, now, 10.0)
    assert ClusterSummary.from_json(summary.to_json()) == summary  # the installer takes it


def test_units_come_from_the_runners_reports_and_the_engines_reasons(
    members: dict[str, Member], cluster: Cluster
) -> None:
    client: Any = members["up1"].client
    for state in (
        UnitState("web@1.service", "up1", "loaded", "active", "running", 1e9),
        UnitState("web@2.service", "late1", "loaded", "failed", "failed", 1e9),
        UnitState("dev-x\\x2dy.mount", "up1", "loaded", "active", "mounted", 1e9),
    ):
        assert state.machine_id is not None
        client.put(KS.unit_state(state.name, state.machine_id), state.to_json())
    client.put(KS.unit_reason("big.service"), "no machine has metadata disk=ssd")
    summary = monitor.summarize(cluster, "prod", seq=1, interval=INTERVAL, now=time.time())
    assert [(u.name, u.machine_id, u.active, u.sub) for u in summary.units] == [
        ("big.service", "", "inactive", "dead"),
        ("web@1.service", "up1", "active", "running"),
        ("web@2.service", "late1", "failed", "failed"),
    ]  # the escaped name is one the schema cannot carry: left out


def test_a_machine_whose_lease_lapses_turns_down_and_a_previous_summary_keeps_it(
    etcd: Etcd, members: dict[str, Member], cluster: Cluster, tmp_path: Path
) -> None:
    lapsing = members["up1"]
    sampler = Monitor(lapsing, tmp_path, interval=1)
    assert sampler.publish_once()
    first = monitor.summarize(cluster, "prod", seq=1, interval=INTERVAL, now=time.time())
    assert by_id(first)["up1"].health == MachineHealth.UP
    assert by_id(first)["up1"].mem_percent > 0
    assert monitor.read_samples(cluster)["up1"] == sampler.last

    lapsing.pause()  # killed: no refresh, so the record and the sample go with the lease
    wait_for(lambda: "up1" not in monitor.read_samples(cluster), 6, "the sample gone")
    later = monitor.summarize(cluster, "prod", seq=2, interval=INTERVAL, now=time.time(),
                              previous=first)  # fmt: skip
    down = by_id(later)["up1"]
    assert down.health == MachineHealth.DOWN
    assert down.last_seen == by_id(first)["up1"].last_seen
    assert down.hostname == "up1"
    # without the previous summary nothing in etcd remembers it
    alone = monitor.summarize(cluster, "prod", seq=3, interval=INTERVAL, now=time.time())
    assert "up1" not in by_id(alone)


def test_samples_nobody_can_read_are_left_out(etcd: Etcd, cluster: Cluster) -> None:
    host, port = etcd.host_port
    client = etcd3.client(host=host, port=port, timeout=5)
    try:
        client.put(KS.sample("bad1"), "{not json")
        good = MachineSample("ok1", time.time(), "h")
        client.put(KS.sample("ok1"), good.to_json())
        client.put(KS.sample("other"), good.to_json())  # names another machine
    finally:
        client.close()
    assert monitor.read_samples(cluster) == {"ok1": good}
