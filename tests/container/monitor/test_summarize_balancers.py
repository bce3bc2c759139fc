"""summarize() on real etcd: balancer records in, the summary's balancers out (bad ones
left out and logged, errors cut short), and a real nginx made stale reported stale."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent.balancer.backends import Listen
from appengine.alert_rules import Change, transitions
from container.services import monitor
from container.services.cluster import Cluster
from tests.conftest import require
from vulcano import etcd as vulcano_etcd
from vulcano.heartbeat import (
    MAX_BALANCER_ERROR,
    MAX_BALANCERS,
    MAX_SUMMARY_BYTES,
    BalancerSummary,
    ClusterSummary,
)
from vulcano.keyspace import Keyspace
from vulcano.lab.balancer import put_endpoint, running_balancer, serving
from vulcano.lab.httpbackend import HttpBackend
from vulcano.lab.poll import wait_for
from vulcano.lab.ports import reserve_port
from vulcano.lab.services import Etcd
from vulcano.records import BalancerStatus

KS = Keyspace()
INTERVAL = 10.0
WAIT = 30.0


@pytest.fixture
def client(etcd: Etcd) -> Iterator[Any]:
    c = vulcano_etcd.connect(etcd.endpoint)
    yield c
    c.close()


def record(name: str, machine: str, **fields: Any) -> BalancerStatus:
    return BalancerStatus(name, machine, "web@", "nginx", "0.0.0.0:80", **fields)


def test_balancer_records_become_the_summarys_balancers(
    client: Any, cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    long_error = "nginx: [emerg] unknown directive\n" + "in /run/lb/nginx.conf:12 " * 40
    for status in (
        record("web@", "m1", backends=["127.0.0.11:80", "127.0.0.12:80"]),
        record("web@", "m2", status="stale", error=long_error, backends=["127.0.0.11:80"]),
        record("api", "m1", status="stale", error="haproxy: [ALERT] parsing"),
    ):
        client.put(KS.balancer(status.name, status.machine_id), status.to_json())
    client.put(KS.balancer("torn", "m1"), "{not json")
    client.put(KS.balancer("list", "m1"), "[1, 2]")
    client.put(KS.balancer("partial", "m1"), '{"name": "partial"}')  # no machine_id ...
    client.put(KS.balancer("forged", "m1"), record("web@", "m3").to_json())  # names another
    weird = record("weird", "m1", status="broken")  # a status the schema does not know
    client.put(KS.balancer("weird", "m1"), weird.to_json())
    spaced = record("has space", "m1")  # a name the schema cannot carry
    client.put(KS.balancer("has space", "m1"), spaced.to_json())

    with caplog.at_level(logging.WARNING, logger="container.services.monitor"):
        summary = monitor.summarize(cluster, "prod", seq=1, interval=INTERVAL, now=time.time())
    assert [(b.name, b.machine_id, b.status, b.backends) for b in summary.balancers] == [
        ("api", "m1", "stale", 0),
        ("web@", "m1", "ok", 2),
        ("web@", "m2", "stale", 1),
    ]
    cut = summary.balancers[2].error
    assert cut.startswith("nginx: [emerg] unknown directive in /run/lb/nginx.conf:12 ")
    assert len(cut) == MAX_BALANCER_ERROR and cut.endswith("\u2026") and "\n" not in cut
    assert summary.balancers[0].error == "haproxy: [ALERT] parsing"
    logged = caplog.text
    for key in ("torn/m1", "list/m1", "partial/m1", "forged/m1"):
        assert f"balancer {key}" in logged
    assert ClusterSummary.from_json(summary.to_json()) == summary  # the installer takes it


def test_a_cluster_without_balancers_sends_the_summary_it_sent_before(
    cluster: Cluster,
) -> None:
    summary = monitor.summarize(cluster, "prod", seq=1, interval=INTERVAL, now=time.time())
    assert summary.balancers == [] and '"balancers"' not in summary.to_json()


def test_a_real_nginx_made_stale_is_reported_stale_then_ok_again(
    etcd: Etcd, client: Any, cluster: Cluster, tmp_path: Path
) -> None:
    require(shutil.which("nginx") is not None, "needs Debian's nginx")
    backends = [HttpBackend(a, reserve_port(a)).start() for a in ("127.0.0.21", "127.0.0.22")]
    try:
        for i, b in enumerate(backends, 1):
            put_endpoint(client, KS, f"web@{i}.service", f"m{i}", b)
        lb = Listen("127.0.0.1", reserve_port())
        options = {"settle": 0.3, "settle_max": 2.0, "machine_id": "lb1"}
        with running_balancer(etcd.endpoint, "nginx", tmp_path / "lb", lb, **options) as balancer:
            wait_for(lambda: serving(balancer, backends), WAIT, "both backends live")
            wait_for(lambda: client.get(balancer.status_key)[0] is not None, WAIT, "a record")

            def summarized(seq: int) -> ClusterSummary:
                return monitor.summarize(
                    cluster, "prod", seq=seq, interval=INTERVAL, now=time.time()
                )

            def stands(status: str) -> bool:
                return [(b.name, b.status) for b in summarized(0).balancers] == [("web@", status)]

            wait_for(lambda: stands("ok"), WAIT, "the summary says ok")
            ok = summarized(1)
            assert ok.balancers == [BalancerSummary("web@", "lb1", "ok", "", 2)]

            balancer.extra = "vulcano_no_such_directive on;"  # every render fails its check
            client.delete(KS.endpoint("web@2.service", "m2"))
            wait_for(lambda: stands("stale"), WAIT, "the summary says stale")
            stale = summarized(2)
            (entry,) = stale.balancers
            assert "vulcano_no_such_directive" in entry.error
            assert entry.backends == 2  # the last good configuration still serves both
            assert [(t.change, t.subject) for t in transitions(ok, stale)] == [
                (Change.BALANCER_STALE, "web@/lb1")
            ]

            balancer.extra = ""  # fixed: the pending change goes out
            wait_for(lambda: serving(balancer, backends[:1]), WAIT, "one backend live")
            wait_for(lambda: stands("ok"), WAIT, "the summary says ok again")
            again = summarized(3)
            assert again.balancers == [replace(ok.balancers[0], backends=1)]
            assert [t.change for t in transitions(stale, again)] == [Change.BALANCER_RECOVERED]
    finally:
        for b in backends:
            b.stop()


def test_past_the_installers_limits_stale_balancers_are_kept_first() -> None:
    now = time.time()
    many = [BalancerSummary(f"ok{i:04d}", "m1", "ok", "", 1) for i in range(MAX_BALANCERS)]
    stale = [BalancerSummary(f"zz{i}", "m1", "stale", "e" * MAX_BALANCER_ERROR) for i in range(3)]
    view = monitor.ClusterView(balancers=many + stale)
    fitted = monitor.fold(view, "prod", seq=1, interval=INTERVAL, now=now)
    assert len(fitted.balancers) == MAX_BALANCERS
    assert {b.name for b in fitted.balancers} >= {"zz0", "zz1", "zz2"}
    loud = [
        BalancerSummary(f"s{i:04d}", "m1", "stale", "e" * MAX_BALANCER_ERROR) for i in range(999)
    ]
    fitted = monitor.fold(monitor.ClusterView(balancers=loud), "prod", seq=1, interval=INTERVAL,
                          now=now)  # fmt: skip
    assert 0 < len(fitted.balancers) < len(loud)
    assert len(fitted.to_json().encode()) <= MAX_SUMMARY_BYTES
    assert ClusterSummary.from_json(fitted.to_json()) == fitted
