"""The relay's reporter: this machine's cluster from the store, summarized on real etcd."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from container.services.reporter import ClusterReporter
from container.store import Store, open_store
from tests.container.monitor.test_summarize_on_etcd import KS
from vulcano.heartbeat import MachineHealth, MachineSample
from vulcano.lab.cluster import Member
from vulcano.lab.ports import reserve_port
from vulcano.lab.services import Etcd

INTERVAL = 10.0


def add(store: Store, name: str, endpoints: str) -> None:
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO clusters (name, size, flavour, network, endpoints, created_at, "
            "etcd_size) VALUES (?, 1, 'cloud-init', '10.244.0.0/16', ?, ?, 1)",
            (name, endpoints, time.time()),
        )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(tmp_path)


def test_before_the_cluster_exists_the_summary_lists_no_machines(store: Store) -> None:
    summary = ClusterReporter(store, "prod", INTERVAL, clock=lambda: 1_790_000_000.0)(7)
    assert summary is not None
    assert (summary.cluster, summary.seq, summary.at) == ("prod", 7, 1_790_000_000.0)
    assert summary.machines == [] and summary.interval == INTERVAL


def test_a_cluster_whose_etcd_answers_is_summarized_and_kept_as_the_previous(
    store: Store, etcd: Etcd, tmp_path: Path
) -> None:
    add(store, "prod", etcd.endpoint)
    member = Member(etcd.endpoint, "m1", tmp_path / "m1", ttl=5, public_ip="192.0.2.9").start()
    try:
        sample = MachineSample("m1", time.time(), "node-1", "192.0.2.9", load1=0.25)
        member.client.put(KS.sample("m1"), sample.to_json(), lease=member.lease_id())
        reporter = ClusterReporter(store, "prod", INTERVAL)
        summary = reporter(1)
        assert summary is not None
        [machine] = summary.machines
        assert (machine.machine_id, machine.health, machine.load1) == ("m1", MachineHealth.UP, 0.25)
        assert reporter.previous == summary
    finally:
        member.close(revoke=True)


def test_a_cluster_whose_etcd_does_not_answer_sends_nothing(store: Store) -> None:
    add(store, "prod", f"http://127.0.0.1:{reserve_port()}")
    reporter = ClusterReporter(store, "prod", INTERVAL)
    assert reporter(1) is None
    assert reporter.previous is None
