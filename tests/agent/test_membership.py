"""Membership: the machine record on a lease, conflicts refused, crashes and outages survived."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.app import build
from agent.config import resolve
from agent.lifecycle import Agent
from agent.membership.registration import MachineConflict
from vulcano.etcd import connect
from vulcano.keyspace import Keyspace
from vulcano.lab import services
from vulcano.lab.netns import REPO
from vulcano.lab.poll import wait_for

KS = Keyspace()


@pytest.fixture
def client(etcd: services.Etcd) -> Iterator[Any]:
    c = connect(etcd.endpoint)
    yield c
    c.close()


def make_agent(etcd: services.Etcd, state: Path, **flags: str) -> Agent:
    base = {
        "etcd_endpoints": etcd.endpoint,
        "public_ip": "198.51.100.1",
        "machine_id": "m1",
        "state_dir": str(state),
        "ttl": "3",
        "overlay": "false",
    }
    return build(resolve({**base, **flags}, environ={}), units=False)


def outlives_its_ttl(client: Any, machine_ids: list[str], ttl: int) -> bool:
    """True when every record still exists a full TTL from now: something refreshed it.

    (etcd's own restart extends each lease once; only a live agent keeps it longer.)
    """
    threading.Event().wait(ttl + 1.0)
    return all(record(client, m)[0] is not None for m in machine_ids)


def record(client: Any, machine_id: str) -> tuple[dict[str, Any] | None, int]:
    value, meta = client.get(KS.machine(machine_id))
    if value is None:
        return None, 0
    return json.loads(value), meta.lease_id


def test_agent_registers_its_record_on_a_lease_and_removes_it_on_shutdown(
    etcd: services.Etcd, client: Any, tmp_path: Path
) -> None:
    agent = make_agent(etcd, tmp_path, metadata="region=eu,disk=ssd")
    agent.start()
    try:
        data, lease_id = record(client, "m1")
        assert data is not None
        assert data["id"] == "m1"
        assert data["public_ip"] == "198.51.100.1"
        assert data["metadata"] == {"region": "eu", "disk": "ssd"}
        assert data["hostname"] and data["version"] == 1
        assert 0 < client.get_lease_info(lease_id).TTL <= 3
        assert client.get(KS.machine_ip("198.51.100.1"))[0] == b"m1"
        assert agent.registration_alive()
    finally:
        agent.shutdown()
    assert record(client, "m1")[0] is None
    assert client.get(KS.machine_ip("198.51.100.1"))[0] is None
    assert not agent.registration_alive()


def test_components_start_after_joining_and_stop_on_shutdown(
    etcd: services.Etcd, client: Any, tmp_path: Path
) -> None:
    calls: list[str] = []

    agent = make_agent(etcd, tmp_path)

    class Probe:
        def start(self) -> None:
            calls.append(f"start registered={record(client, agent.machine_id)[0] is not None}")

        def stop(self) -> None:
            calls.append("stop")

    agent.add_component(Probe())
    agent.start()
    agent.shutdown()
    assert calls == ["start registered=True", "stop"]


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ({"public_ip": "198.51.100.2"}, "machine id m1 is already registered by a live agent"),
        ({"machine_id": "m2"}, "public IP 198.51.100.1 is already registered by a live agent"),
    ],
)
def test_second_live_claim_of_id_or_ip_is_refused(
    etcd: services.Etcd, client: Any, tmp_path: Path, second: dict[str, str], message: str
) -> None:
    first = make_agent(etcd, tmp_path / "a")
    first.start()
    try:
        intruder = make_agent(etcd, tmp_path / "b", **second)
        with pytest.raises(MachineConflict, match=message):
            intruder.start()
        intruder.shutdown()
        data, _ = record(client, "m1")
        assert data is not None and data["public_ip"] == "198.51.100.1"
        assert first.registration_alive()
    finally:
        first.shutdown()


def test_second_agent_on_the_same_state_dir_is_refused(etcd: services.Etcd, tmp_path: Path) -> None:
    first = make_agent(etcd, tmp_path)
    first.start()
    try:
        result = run_cli(etcd, tmp_path, "m9", "198.51.100.9")
        assert result.returncode == 1
        assert "another vulcano-agent is running with state directory" in result.stderr
    finally:
        first.shutdown()


def run_cli(
    etcd: services.Etcd, state: Path, machine: str, ip: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        agent_argv(etcd.endpoint, state, machine, ip, ttl=3),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        check=False,
    )


def agent_argv(endpoint: str, state: Path, machine: str, ip: str, ttl: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "agent",
        "run",
        "--no-overlay",
        "--etcd-endpoints",
        endpoint,
        "--public-ip",
        ip,
        "--machine-id",
        machine,
        "--state-dir",
        str(state),
        "--ttl",
        str(ttl),
    ]


def start_agent(
    endpoint: str, state: Path, ttl: int, machine: str = "m1"
) -> subprocess.Popen[bytes]:
    log = open(state.parent / f"{state.name}.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            agent_argv(endpoint, state, machine, "198.51.100.1", ttl),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
    finally:
        log.close()


def test_sigterm_removes_the_record_at_once(
    etcd: services.Etcd, client: Any, tmp_path: Path
) -> None:
    proc = start_agent(etcd.endpoint, tmp_path / "s", ttl=120)
    try:
        wait_for(lambda: record(client, "m1")[0] is not None, 20, "registration")
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(20) == 0
        # a 120 s lease cannot have expired: the agent removed its record itself
        assert record(client, "m1")[0] is None
    finally:
        services.stop_process(proc)


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.1, 0.2, 0.4])
def test_sigterm_at_any_moment_of_startup_stops_the_agent(
    etcd: services.Etcd, client: Any, tmp_path: Path, delay: float
) -> None:
    """SIGTERM as the agent comes up (into its stop event's wait) still stops it.

    A Python signal handler that set the stop event could deadlock on the event's own
    lock when the signal came while the main thread was entering Event.wait()."""
    proc = start_agent(etcd.endpoint, tmp_path / "s", ttl=120)
    try:
        wait_for(lambda: record(client, "m1")[0] is not None, 20, "registration")
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(20) == 0
        assert record(client, "m1")[0] is None
    finally:
        services.stop_process(proc)


def test_a_crashed_agent_restarted_replaces_its_own_record_without_waiting(
    etcd: services.Etcd, client: Any, tmp_path: Path
) -> None:
    state = tmp_path / "s"
    proc = start_agent(etcd.endpoint, state, ttl=120)
    try:
        wait_for(lambda: record(client, "m1")[0] is not None, 20, "registration")
        _, old_lease = record(client, "m1")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert record(client, "m1")[1] == old_lease  # the dead agent's record is still there
        proc = start_agent(etcd.endpoint, state, ttl=120)
        wait_for(lambda: record(client, "m1")[1] not in (0, old_lease), 30, "takeover")
        assert client.get_lease_info(old_lease).TTL == -1  # the old lease was revoked
        assert proc.poll() is None
    finally:
        services.stop_process(proc)


def test_a_killed_agent_disappears_when_its_lease_expires(
    etcd: services.Etcd, client: Any, tmp_path: Path
) -> None:
    proc = start_agent(etcd.endpoint, tmp_path / "s", ttl=2)
    try:
        wait_for(lambda: record(client, "m1")[0] is not None, 20, "registration")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        wait_for(lambda: record(client, "m1")[0] is None, 15, "expiry")
    finally:
        services.stop_process(proc)


def test_agent_registers_again_after_losing_its_lease(
    etcd: services.Etcd, client: Any, tmp_path: Path
) -> None:
    agent = make_agent(etcd, tmp_path)
    agent.start()
    try:
        _, lease_id = record(client, "m1")
        client.revoke_lease(lease_id)  # what a long partition does
        wait_for(lambda: record(client, "m1")[1] not in (0, lease_id), 15, "re-register")
        wait_for(agent.registration_alive, 5, "alive again")
    finally:
        agent.shutdown()


@pytest.mark.slow
def test_agent_survives_etcd_being_unreachable(tmp_path: Path) -> None:
    (tmp_path / "etcd").mkdir()
    with services.etcd_server(tmp_path / "etcd") as member:
        proc = start_agent(member.endpoint, tmp_path / "s", ttl=2)
        client = connect(member.endpoint)
        try:
            wait_for(lambda: record(client, "m1")[0] is not None, 20, "registration")
            member.kill()
            stopped = threading.Event()
            stopped.wait(6)  # three TTLs without etcd
            log = (tmp_path / "s.log").read_text()
            assert proc.poll() is None, f"the agent must keep running while etcd is down:\n{log}"
            member.start()
            member.wait_healthy()
            wait_for(lambda: record(client, "m1")[0] is not None, 20, "back")
            # the agent talks to etcd again: its lease is refreshed, not just restored
            assert outlives_its_ttl(client, ["m1"], ttl=2)
            assert proc.poll() is None
        finally:
            client.close()
            services.stop_process(proc)


@pytest.mark.slow
def test_registration_alive_turns_false_without_etcd_and_true_again(tmp_path: Path) -> None:
    (tmp_path / "etcd").mkdir()
    with services.etcd_server(tmp_path / "etcd") as member:
        agent = build(
            resolve(
                {
                    "etcd_endpoints": member.endpoint,
                    "public_ip": "198.51.100.1",
                    "machine_id": "m1",
                    "state_dir": str(tmp_path / "s"),
                    "ttl": "2",
                    "overlay": "false",
                },
                environ={},
            ),
            units=False,
        )
        agent.start()
        try:
            assert agent.registration_alive()
            member.kill()
            # fencing: once the lease cannot be confirmed for its TTL, units must stop
            wait_for(lambda: not agent.registration_alive(), 10, "lease presumed lost")
            member.start()
            member.wait_healthy()
            wait_for(agent.registration_alive, 20, "lease held again")
        finally:
            agent.shutdown()
