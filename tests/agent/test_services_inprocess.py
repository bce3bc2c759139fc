"""The unit services in this process, on a real etcd, probing real sockets on loopback:
what they publish as a check passes and fails, how seldom they write, what they withdraw,
and the restart they ask for."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import etcd3
import pytest

from agent.services.component import UnitServices
from agent.services.instances import Instance
from agent.services.probes import ProbeResult, probe
from vulcano.endpoints import CheckSpec, CheckStates, CheckStatus, Endpoint, PortSpec
from vulcano.keyspace import Keyspace
from vulcano.lab.poll import wait_for
from vulcano.lab.services import Etcd

KS = Keyspace()
ME = "m1"
NAME = "web.service"


@dataclass
class _Machine:
    """This machine as the services see it: a real lease on the real etcd."""

    client: Any
    lease: Any
    machine_id: str = ME
    public_ip: str = "127.0.0.1"
    keyspace: Keyspace = KS

    def etcd_client(self) -> Any:
        return self.client

    def lease_id(self) -> int:
        return int(self.lease.id)


@dataclass
class _Counted:
    """The real probe, counted."""

    runs: int = 0

    def __call__(self, spec: CheckSpec, address: str, netns: str | None) -> ProbeResult:
        self.runs += 1
        return probe(spec, address, netns)


@pytest.fixture
def client(etcd: Etcd) -> Iterator[etcd3.Etcd3Client]:
    host, port = etcd.host_port
    c = etcd3.client(host=host, port=port, timeout=5)
    yield c
    c.close()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as s:
        yield s


def _services(client: etcd3.Etcd3Client, counted: _Counted) -> UnitServices:
    client.put(KS.assignment(ME, NAME), "assigned")  # the unit is this machine's
    return UnitServices(_Machine(client, client.lease(30)), counted)


def _instance(port: int, extra: str = "") -> Instance:
    text = (
        "[Service]\nExecStart=/bin/true\n\n[X-Vulcano]\n"
        f"Port={port}\nCheck=tcp :{port} interval=200ms failing=2 name=port\n{extra}"
    )
    return Instance(NAME, f"hash{port}", text, True)


def _get(client: etcd3.Etcd3Client, key: str) -> bytes | None:
    return client.get(key)[0]  # type: ignore[no-any-return]


def test_endpoint_follows_the_check_and_results_alike_write_nothing(
    client: etcd3.Etcd3Client, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    counted = _Counted()
    services = _services(client, counted)
    services.start()
    try:
        services.observe([_instance(port)])
        raw = wait_for(lambda: _get(client, KS.endpoint(NAME, ME)), 10, "the endpoint")
        ep = Endpoint.from_json(raw)
        assert (ep.address, ep.ports, ep.machine_id) == ("127.0.0.1", (PortSpec(port),), ME)
        writes = services.writes
        wait_for(lambda: counted.runs >= 15, 20, "fifteen results")
        assert services.writes == writes  # the same result again and again: no write
        states = CheckStates.from_json(_get(client, KS.check_state(NAME, ME)) or b"")
        assert states.checks["port"].status == CheckStatus.PASSING
        lease = client.get(KS.endpoint(NAME, ME))[1].lease_id
        assert lease == services.host.lease_id()

        listener.close()  # the port refuses now: failing after two results
        wait_for(lambda: _get(client, KS.endpoint(NAME, ME)) is None, 10, "withdrawn")
        states = CheckStates.from_json(_get(client, KS.check_state(NAME, ME)) or b"")
        assert states.status == CheckStatus.FAILING
        assert "refused" in states.checks["port"].output

        services.observe([])  # stopped: its check state goes too
        wait_for(lambda: _get(client, KS.check_state(NAME, ME)) is None, 10, "state withdrawn")
        runs = counted.runs
        wait_for(lambda: counted.runs <= runs + 1, 1, "checks stopped")  # one may be in flight
    finally:
        services.stop()


def test_check_restart_asks_for_one_restart_and_notes_it(client: etcd3.Etcd3Client) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    services = _services(client, _Counted())
    services.start()
    try:
        instance = _instance(closed, "CheckRestart=1s\n")
        assert services.observe([instance]) == []
        asked: list[str] = []
        wait_for(lambda: asked.extend(services.observe([instance])) or asked, 10, "a restart")
        assert asked == [NAME]
        assert services.observe([instance]) == []  # asked once, not on every pass
        note = wait_for(
            lambda: CheckStates.from_json(_get(client, KS.check_state(NAME, ME)) or b"{}").note,
            10,
            "the note",
        )
        assert "CheckRestart=1s" in note and "port" in note
    finally:
        services.stop()


def test_nothing_is_published_for_a_unit_this_machine_no_longer_has(
    client: etcd3.Etcd3Client, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    counted = _Counted()
    services = _services(client, counted)
    client.delete(KS.assignment(ME, NAME))  # moved away before the first write
    services.start()
    try:
        services.observe([_instance(port)])
        wait_for(lambda: counted.runs >= 5, 10, "checks running")
        assert _get(client, KS.endpoint(NAME, ME)) is None
        assert _get(client, KS.check_state(NAME, ME)) is None
    finally:
        services.stop()


def test_a_replaced_instance_takes_its_endpoint_with_it(
    client: etcd3.Etcd3Client, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    services = _services(client, _Counted())
    services.start()
    try:
        services.observe([_instance(port)])
        wait_for(lambda: _get(client, KS.endpoint(NAME, ME)), 10, "the endpoint")
        # new content between two passes, whose check never passes: nothing stale stays
        services.observe([_instance(closed)])
        wait_for(lambda: _get(client, KS.endpoint(NAME, ME)) is None, 10, "the old withdrawn")
        states = wait_for(
            lambda: (
                (raw := _get(client, KS.check_state(NAME, ME)))
                and CheckStates.from_json(raw).status == CheckStatus.FAILING
            ),
            10,
            "the new instance's checks failing",
        )
        assert states
        assert _get(client, KS.endpoint(NAME, ME)) is None
    finally:
        services.stop()
