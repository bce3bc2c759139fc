"""An agent on a machine decommissioned on purpose (`vulcano machine remove`), on a real
etcd: refused when it registers again, it stops instead of coming back; it stops its
units rather than leaving them for a successor; and it leases no subnet."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.app import build
from agent.cli import EXIT_DECOMMISSIONED
from agent.config import resolve
from agent.lifecycle import Agent
from agent.overlay import leases
from vulcano import network
from vulcano.errors import MachineDecommissioned
from vulcano.etcd import connect
from vulcano.keyspace import Keyspace
from vulcano.lab.cluster import Member, Node, kill_by_pid, pids_of
from vulcano.lab.netns import REPO
from vulcano.lab.poll import wait_for
from vulcano.lab.services import Etcd
from vulcano.records import Assignment, DesiredState, UnitSource
from vulcano.registry import Registry

KS = Keyspace()


@pytest.fixture
def client(etcd: Etcd) -> Iterator[Any]:
    c = connect(etcd.endpoint)
    yield c
    c.close()


def make_agent(etcd: Etcd, state: Path) -> Agent:
    flags = {
        "etcd_endpoints": etcd.endpoint,
        "public_ip": "198.51.100.1",
        "machine_id": "m1",
        "state_dir": str(state),
        "ttl": "3",
        "overlay": "false",
    }
    return build(resolve(flags, environ={}), units=False)


def decommission(client: Any, machine_id: str) -> None:
    client.put(KS.machine_decommissioned(machine_id), json.dumps({"machine_id": machine_id}))


def test_a_running_agent_whose_record_is_taken_away_stops_instead_of_coming_back(
    etcd: Etcd, client: Any, tmp_path: Path
) -> None:
    agent = make_agent(etcd, tmp_path)
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        wait_for(agent.ready.is_set, 10, "registered")
        decommission(client, "m1")
        _, meta = client.get(KS.machine("m1"))
        client.revoke_lease(meta.lease_id)  # as `machine remove` does once the units moved
        thread.join(timeout=10)
        assert not thread.is_alive()
        assert agent.registration.decommissioned.is_set()
        threading.Event().wait(4)  # longer than its TTL
        assert client.get(KS.machine("m1"))[0] is None
        assert client.get(KS.machine_ip("198.51.100.1"))[0] is None
    finally:
        agent.stop()
        thread.join(timeout=10)


def test_a_new_agent_on_a_decommissioned_machine_is_refused_and_writes_nothing(
    etcd: Etcd, client: Any, tmp_path: Path
) -> None:
    decommission(client, "m1")
    agent = make_agent(etcd, tmp_path)
    with pytest.raises(MachineDecommissioned, match="m1 was removed from the cluster on purpose"):
        agent.start()
    agent.shutdown()
    assert [m.key.decode() for _, m in client.get_prefix("/")] == [KS.machine_decommissioned("m1")]


def test_a_decommissioned_machine_stops_its_units_when_its_agent_stops(
    etcd: Etcd, client: Any, tmp_path: Path
) -> None:
    marker = "vdc-" + secrets.token_hex(4)
    store = Registry(client)
    text = f"[Service]\nExecStart=/bin/sh -c 'sleep 1000; :' {marker}\nTimeoutStopSec=3\n"
    store.submit([UnitSource("s.service", text)])
    store.set_desired(["s.service"], DesiredState.LAUNCHED)
    spec = store.spec("s.service")
    assert spec is not None
    node = Node(Member(etcd.endpoint, "m1", tmp_path / "m1", ttl=3), engine=False).start()
    try:
        client.put(KS.assignment("m1", "s.service"), Assignment.of(spec).to_json())
        wait_for(lambda: pids_of(marker), 15, "the unit running")
        decommission(client, "m1")
        node.stop(revoke=True)
        wait_for(lambda: not pids_of(marker), 10, "the unit stopped")
        assert client.get(KS.machine_restarting("m1"))[0] is None  # no successor to wait for
    finally:
        kill_by_pid(pids_of(marker))


def test_a_decommissioned_machine_leases_no_subnet(client: Any) -> None:
    config = network.parse({"network": "10.6.0.0/16"})
    wanted = leases.SubnetLease(
        ipaddress.IPv4Network("0.0.0.0/32"), "m1", "198.51.100.1", "02:00:00:00:00:01"
    )
    decommission(client, "m1")
    with pytest.raises(MachineDecommissioned, match="no subnet for it"):
        leases.acquire(client, KS, config, wanted, ttl=60)
    assert list(client.get_prefix(KS.subnets)) == []


def agent_process(etcd: Etcd, state: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "agent",
        "run",
        "--no-overlay",
        "--etcd-endpoints",
        etcd.endpoint,
        "--public-ip",
        "198.51.100.1",
        "--machine-id",
        "m1",
        "--state-dir",
        str(state),
        "--ttl",
        "3",
    ]


def test_the_agent_process_exits_with_the_status_its_unit_does_not_restart(
    etcd: Etcd, client: Any, tmp_path: Path
) -> None:
    log = tmp_path / "agent.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            agent_process(etcd, tmp_path / "s"),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
    try:
        wait_for(lambda: client.get(KS.machine("m1"))[1], 20, "registration")
        decommission(client, "m1")
        client.revoke_lease(client.get(KS.machine("m1"))[1].lease_id)
        assert proc.wait(20) == EXIT_DECOMMISSIONED
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
    assert "this machine was decommissioned" in log.read_text()
    again = subprocess.run(
        agent_process(etcd, tmp_path / "s"),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        check=False,
    )
    assert again.returncode == EXIT_DECOMMISSIONED
    assert "m1 was removed from the cluster on purpose" in again.stderr
    assert client.get(KS.machine("m1"))[0] is None
