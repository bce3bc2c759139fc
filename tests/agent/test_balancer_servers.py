"""The balancer with real nginx and real HAProxy, real etcd and real HTTP backends.

Endpoints are written to etcd as the agent writes them; the backends are processes on
127.0.0.x; requests go through the server the balancer started.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.balancer.backends import Backend, Listen
from tests.conftest import require
from vulcano import etcd as vulcano_etcd
from vulcano.endpoints import Endpoint, PortSpec
from vulcano.keyspace import Keyspace
from vulcano.lab import services
from vulcano.lab.balancer import ClientLoop, put_endpoint, running_balancer, serving
from vulcano.lab.httpbackend import HttpBackend, get
from vulcano.lab.poll import wait_for
from vulcano.lab.ports import reserve_port
from vulcano.records import BalancerStatus

KS = Keyspace()
KINDS = ["nginx", "haproxy"]
WAIT = 30.0
FAST = {"settle": 0.3, "settle_max": 2.0}


def need(kind: str) -> None:
    require(shutil.which(kind) is not None, f"needs Debian's {kind}")


@pytest.fixture
def backends() -> Iterator[list[HttpBackend]]:
    started = []
    try:
        for i in range(1, 4):
            address = f"127.0.0.{10 + i}"
            started.append(HttpBackend(address, reserve_port(address)).start())
        yield started
    finally:
        for b in started:
            b.stop()


@pytest.fixture
def client(etcd: services.Etcd) -> Iterator[Any]:
    c = vulcano_etcd.connect(etcd.endpoint)
    yield c
    c.close()


def listen() -> Listen:
    return Listen("127.0.0.1", reserve_port())


def spread(lb: Listen, n: int) -> set[str]:
    return {get(lb.host, lb.port)[1] for _ in range(n)}


def publish(client: Any, backends: list[HttpBackend]) -> None:
    for i, b in enumerate(backends, 1):
        put_endpoint(client, KS, f"web@{i}.service", f"m{i}", b)


@pytest.mark.parametrize("kind", KINDS)
def test_requests_reach_all_three_then_follow_a_removal_and_a_return(
    kind: str, etcd: services.Etcd, client: Any, backends: list[HttpBackend], tmp_path: Path
) -> None:
    need(kind)
    lb = listen()
    publish(client, backends)
    with running_balancer(etcd.endpoint, kind, tmp_path / "lb", lb, **FAST) as balancer:
        wait_for(lambda: serving(balancer, backends), WAIT, "three backends live")
        assert spread(lb, 30) == {b.name for b in backends}
        with ClientLoop(lb.host, lb.port) as loop:
            loop.wait_answers(20)
            # an instance withdrawn (still running): it leaves the rotation
            client.delete(KS.endpoint("web@2.service", "m2"))
            wait_for(lambda: serving(balancer, [backends[0], backends[2]]), WAIT, "removal")
            landed = time.monotonic()
            loop.wait_answers(50)
            # an instance that dies, then is withdrawn (as its failing check would)
            backends[2].stop()
            client.delete(KS.endpoint("web@3.service", "m3"))
            wait_for(lambda: serving(balancer, [backends[0]]), WAIT, "second removal")
            dead_gone = time.monotonic()
            loop.wait_answers(50)
            after = loop.answered_by_since(landed)
            assert backends[1].name not in after
            assert set(loop.answered_by_since(dead_gone)) == {backends[0].name}
            assert loop.failures_since(landed) == [], loop.failures_since(landed)[:3]
            # it comes back: it rejoins
            put_endpoint(client, KS, "web@2.service", "m2", backends[1])
            wait_for(lambda: serving(balancer, backends[:2]), WAIT, "return")
            back = time.monotonic()
            loop.wait_answers(30)
            assert set(loop.answered_by_since(back)) == {backends[0].name, backends[1].name}
        assert loop.failures == [], loop.failures[:3]
        record = BalancerStatus.from_json(client.get(balancer.status_key)[0])
        assert record.status == "ok" and record.kind == kind
        assert record.backends == [backends[0].name, backends[1].name]


@pytest.mark.parametrize("kind", KINDS)
def test_a_refused_check_never_replaces_the_working_config(
    kind: str, etcd: services.Etcd, client: Any, backends: list[HttpBackend], tmp_path: Path
) -> None:
    need(kind)
    lb = listen()
    publish(client, backends)
    with running_balancer(etcd.endpoint, kind, tmp_path / "lb", lb, **FAST) as balancer:
        wait_for(lambda: serving(balancer, backends), WAIT, "three backends live")
        live = balancer.server.live.read_text()
        pid = balancer.server.pid
        balancer.extra = "vulcano_no_such_directive on;"  # the render is broken from now on
        with ClientLoop(lb.host, lb.port) as loop:
            client.delete(KS.endpoint("web@2.service", "m2"))
            wait_for(lambda: balancer.status.status == "stale", WAIT, "stale status")
            loop.wait_answers(30)
        assert "vulcano_no_such_directive" in balancer.status.error
        assert balancer.status.rejected == 1  # checked once, not again every tick
        assert balancer.server.live.read_text() == live
        assert not balancer.server.staged.exists()
        assert balancer.server.pid == pid and balancer.server.alive()
        assert loop.failures == []
        assert set(c for _, c in loop.answers) == {b.name for b in backends}  # old config
        record = BalancerStatus.from_json(client.get(balancer.status_key)[0])
        assert record.status == "stale" and "vulcano_no_such_directive" in record.error
        balancer.extra = ""  # fixed: the pending change goes out
        wait_for(lambda: serving(balancer, [backends[0], backends[2]]), WAIT, "recovered")
        assert spread(lb, 20) == {backends[0].name, backends[2].name}


@pytest.mark.parametrize("kind", KINDS)
def test_a_burst_of_50_changes_costs_a_bounded_number_of_reloads(
    kind: str, etcd: services.Etcd, client: Any, backends: list[HttpBackend], tmp_path: Path
) -> None:
    need(kind)
    lb = listen()
    publish(client, backends)
    with running_balancer(etcd.endpoint, kind, tmp_path / "lb", lb, settle=1.0) as balancer:
        wait_for(lambda: serving(balancer, backends), WAIT, "three backends live")
        before = balancer.status.reloads
        # 40 instances come up, 10 of them go again before settling: 50 changes
        for i in range(40):
            e = Endpoint(f"web@{100 + i}.service", f"n{i}", f"127.0.1.{i + 1}", (PortSpec(80),))
            client.put(KS.endpoint(e.unit, e.machine_id), e.to_json())
        for i in range(10):
            client.delete(KS.endpoint(f"web@{100 + i}.service", f"n{i}"))
        wanted = sorted([b.name for b in backends] + [f"127.0.1.{i + 1}:80" for i in range(10, 40)])
        wait_for(lambda: balancer.status.backends == wanted, WAIT, "the burst applied")
        reloads = balancer.status.reloads - before
        assert 1 <= reloads <= 3, f"{reloads} reloads for 50 changes"
        assert get(lb.host, lb.port)[0] == 200


def test_haproxy_membership_changes_that_fit_use_the_runtime_api_not_a_reload(
    etcd: services.Etcd, client: Any, backends: list[HttpBackend], tmp_path: Path
) -> None:
    need("haproxy")
    lb = listen()
    publish(client, backends)
    extra = HttpBackend("127.0.0.14", reserve_port("127.0.0.14")).start()
    try:
        with running_balancer(etcd.endpoint, "haproxy", tmp_path / "lb", lb, **FAST) as balancer:
            wait_for(lambda: serving(balancer, backends), WAIT, "three backends live")
            reloads, pid = balancer.status.reloads, balancer.server.pid
            runtime = balancer.status.runtime_changes  # the first three went that way too
            with ClientLoop(lb.host, lb.port) as loop:
                client.delete(KS.endpoint("web@2.service", "m2"))
                wait_for(lambda: serving(balancer, [backends[0], backends[2]]), WAIT, "removal")
                put_endpoint(client, KS, "web@4.service", "m4", extra)
                now = [backends[0], backends[2], extra]
                wait_for(lambda: serving(balancer, now), WAIT, "addition")
                landed = time.monotonic()
                loop.wait_answers(40)
            assert balancer.status.reloads == reloads  # no reload at all
            assert balancer.status.runtime_changes - runtime == 2  # slot 2 freed, then filled
            assert balancer.server.pid == pid
            assert set(loop.answered_by_since(landed)) == {b.name for b in now}
            assert loop.failures == []
            # the file says what the runtime API did, so a reload would change nothing
            text = balancer.server.live.read_text()
            assert f"server srv2 {extra.name}\n" in text
            assert balancer.slots[1] == Backend(extra.address, extra.port)
    finally:
        extra.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_set_is_refused_unless_allowed(
    kind: str, etcd: services.Etcd, client: Any, backends: list[HttpBackend], tmp_path: Path
) -> None:
    need(kind)
    lb = listen()
    publish(client, backends)
    with running_balancer(etcd.endpoint, kind, tmp_path / "lb", lb, **FAST) as balancer:
        wait_for(lambda: serving(balancer, backends), WAIT, "three backends live")
        client.delete_prefix(KS.endpoints)
        wait_for(lambda: balancer.status.status == "stale", WAIT, "refusal")
        assert "refusing to replace 3 backend(s) with none" in balancer.status.error
        assert spread(lb, 12) == {b.name for b in backends}
    lb2 = listen()
    publish(client, backends)
    with running_balancer(
        etcd.endpoint, kind, tmp_path / "lb2", lb2, allow_empty=True, **FAST
    ) as balancer:
        wait_for(lambda: serving(balancer, backends), WAIT, "three backends live")
        client.delete_prefix(KS.endpoints)
        wait_for(lambda: serving(balancer, []), WAIT, "empty set applied")
        assert get(lb2.host, lb2.port)[0] == 503


@pytest.mark.parametrize("kind", KINDS)
def test_with_no_endpoint_at_start_it_answers_503_then_serves(
    kind: str, etcd: services.Etcd, client: Any, backends: list[HttpBackend], tmp_path: Path
) -> None:
    need(kind)
    lb = listen()
    with running_balancer(etcd.endpoint, kind, tmp_path / "lb", lb, **FAST) as balancer:
        assert balancer.status.backends == []
        assert get(lb.host, lb.port)[0] == 503
        put_endpoint(client, KS, "web@1.service", "m1", backends[0])
        wait_for(lambda: serving(balancer, backends[:1]), WAIT, "first backend")
        assert spread(lb, 5) == {backends[0].name}


def test_a_hostile_record_is_skipped_and_said(
    etcd: services.Etcd, client: Any, backends: list[HttpBackend], tmp_path: Path
) -> None:
    need("nginx")
    lb = listen()
    publish(client, backends[:1])
    bad = Endpoint("web@6.service", "m6", "127.0.0.1:1; } include /etc/passwd; {", (PortSpec(80),))
    client.put(KS.endpoint(bad.unit, bad.machine_id), bad.to_json())
    with running_balancer(etcd.endpoint, "nginx", tmp_path / "lb", lb, **FAST) as balancer:
        wait_for(lambda: serving(balancer, backends[:1]), WAIT, "one backend")
        assert balancer.status.skipped == [
            f"{KS.endpoint('web@6.service', 'm6')}: address '127.0.0.1:1; }} include "
            "/etc/passwd; {' is not an IP address"
        ]
        assert "passwd" not in balancer.server.live.read_text()
        assert spread(lb, 5) == {backends[0].name}


def test_a_lost_watch_is_said_and_followed_again(
    etcd: services.Etcd, client: Any, backends: list[HttpBackend], tmp_path: Path
) -> None:
    need("nginx")
    lb = listen()
    publish(client, backends[:1])
    with running_balancer(etcd.endpoint, "nginx", tmp_path / "lb", lb, **FAST) as balancer:
        wait_for(lambda: serving(balancer, backends[:1]), WAIT, "one backend")
        etcd.stop()
        try:
            assert spread(lb, 5) == {backends[0].name}  # serving on without etcd
            wait_for(lambda: balancer.status.watch_restarts >= 1, WAIT, "watch lost, said")
        finally:
            etcd.start()
        put_endpoint(client, KS, "web@2.service", "m2", backends[1])
        wait_for(lambda: serving(balancer, backends[:2]), WAIT, "a change after the restart")


def test_the_status_record_outlives_its_lease_ttl_while_changes_keep_coming(
    etcd: services.Etcd, client: Any, backends: list[HttpBackend], tmp_path: Path
) -> None:
    need("nginx")
    lb = listen()
    publish(client, backends)
    options = {**FAST, "status_ttl": 2}
    with running_balancer(etcd.endpoint, "nginx", tmp_path / "lb", lb, **options) as balancer:
        wait_for(lambda: serving(balancer, backends), WAIT, "three backends live")
        deadline = time.monotonic() + 5.0  # 2.5 lease TTLs of status changes
        flip = False
        while time.monotonic() < deadline:
            if flip:
                put_endpoint(client, KS, "web@2.service", "m2", backends[1])
            else:
                client.delete(KS.endpoint("web@2.service", "m2"))
            flip = not flip
            time.sleep(0.3)
            assert client.get(balancer.status_key)[0] is not None
        assert balancer.status.reloads >= 4  # the status did change all along
    assert client.get(balancer.status_key)[0] is None  # and went when it stopped


@pytest.mark.parametrize("kind", KINDS)
def test_records_that_change_nothing_served_cause_no_reload(
    kind: str, etcd: services.Etcd, client: Any, backends: list[HttpBackend], tmp_path: Path
) -> None:
    need(kind)
    lb = listen()
    publish(client, backends)
    with running_balancer(etcd.endpoint, kind, tmp_path / "lb", lb, **FAST) as balancer:
        wait_for(lambda: serving(balancer, backends), WAIT, "three backends live")
        before = (balancer.status.reloads, balancer.status.runtime_changes)
        text = balancer.server.live.read_text()
        publish(client, backends)  # the same instances again (a new `since` each)
        other = Endpoint("api@1.service", "m1", "127.0.0.99", (PortSpec(80),))
        client.put(KS.endpoint(other.unit, other.machine_id), other.to_json())
        # a real change after them: once it is live, the ones before it were seen
        client.delete(KS.endpoint("web@3.service", "m3"))
        wait_for(lambda: serving(balancer, backends[:2]), WAIT, "the removal")
        after = (balancer.status.reloads, balancer.status.runtime_changes)
        assert after[0] - before[0] + after[1] - before[1] == 1  # the removal alone
        assert balancer.server.live.read_text() != text
        assert "127.0.0.99" not in balancer.server.live.read_text()
