"""`vulcano machine remove`: a machine decommissioned on purpose, against a real etcd and a
cluster in this process (two lab nodes and one whole node agent, engines and built-in
runners): its units move to the others first, its subnet and record go, nothing fails
or reads as an outage, and its agent, still running, leaves instead of coming back."""

from __future__ import annotations

import ipaddress
import json
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import etcd3
import pytest

from agent.app import build
from agent.config import resolve
from agent.lifecycle import Agent
from agent.overlay import leases
from agent.units.runners.builtin import BuiltinRunner
from container.services import decommission
from container.services.audit import AuditLog
from container.store import open_store
from tests.container.conftest import KS, Invoke, announce, dump
from vulcano import network
from vulcano.errors import MachineDecommissioned
from vulcano.lab.cluster import Node, kill_by_pid, nodes, pids_of
from vulcano.lab.poll import wait_for
from vulcano.lab.services import Etcd
from vulcano.records import DesiredState, Machine, UnitSource
from vulcano.registry import Registry

GONE = "m0-gone"  # the lowest id: the engine's ties go to it, so it gets units
KEPT = ["m1-kept", "m2-kept"]
GONE_IP = "198.51.100.7"
NET = network.parse({"network": "10.5.0.0/16"})


def sleeper(marker: str, extra: str = "") -> str:
    return (
        f"[Service]\nExecStart=/bin/sh -c 'sleep 1000; :' {marker}-%n\nTimeoutStopSec=3\n" + extra
    )


@pytest.fixture
def marker() -> str:
    return "vrm-" + secrets.token_hex(4)


@pytest.fixture
def store(client: etcd3.Etcd3Client) -> Registry:
    return Registry(client)


def whole_agent(etcd: Etcd, state: Path) -> Agent:
    flags = {
        "etcd_endpoints": etcd.endpoint,
        "public_ip": GONE_IP,
        "machine_id": GONE,
        "state_dir": str(state),
        "ttl": "3",
        "overlay": "false",
    }
    return build(resolve(flags, environ={}), runner=BuiltinRunner(state))


@pytest.fixture
def three(
    etcd: Etcd, tmp_path: Path, marker: str, store: Registry
) -> Iterator[tuple[Agent, threading.Thread, list[Node]]]:
    agent = whole_agent(etcd, tmp_path / GONE)
    thread = threading.Thread(target=agent.run, daemon=True)
    try:
        with nodes(etcd.endpoint, tmp_path, KEPT, ttl=3) as kept:
            thread.start()
            wait_for(agent.ready.is_set, 15, "the whole agent joined")
            yield agent, thread, kept
            specs = list(store.specs())
            if specs:
                store.destroy(specs)
            wait_for(lambda: not pids_of(marker), 15, "every unit process gone")
    finally:
        agent.stop()
        thread.join(timeout=15)
        kill_by_pid(pids_of(marker))


def lease_subnet(client: etcd3.Etcd3Client, machine_id: str, ip: str) -> leases.SubnetLease:
    """Lease a subnet as the machine's overlay would."""
    wanted = leases.SubnetLease(
        ipaddress.IPv4Network("0.0.0.0/32"), machine_id, ip, "02:00:00:00:00:07"
    )
    lease, _ = leases.acquire(client, KS, NET, wanted, ttl=3600)
    return lease


def where_running(store: Registry, names: list[str]) -> dict[str, list[str]] | None:
    """unit → machines reporting it active, once every unit runs somewhere."""
    out: dict[str, list[str]] = {}
    for s in store.machine_states():
        if s.active == "active" and s.machine_id:
            out.setdefault(s.name, []).append(s.machine_id)
    return out if all(n in out for n in names) else None


def test_remove_moves_the_units_then_takes_the_record_and_subnet_away(
    three: tuple[Agent, threading.Thread, list[Node]],
    etcd: Etcd,
    vulcano: Invoke,
    client: etcd3.Etcd3Client,
    store: Registry,
    marker: str,
    tmp_path: Path,
    state_dir: Path,
) -> None:
    agent, thread, _ = three
    subnet = lease_subnet(client, GONE, GONE_IP)
    kept_subnet = lease_subnet(client, KEPT[0], "198.51.100.8")
    for i in range(1, 5):
        (tmp_path / f"u{i}.service").write_text(sleeper(marker))
    (tmp_path / "g.service").write_text(sleeper(marker, "[X-Fleet]\nGlobal=true\n"))
    (tmp_path / "pin.service").write_text(sleeper(marker, f"[X-Fleet]\nMachineID={GONE}\n"))
    plain = [f"u{i}.service" for i in range(1, 5)]
    files = [str(tmp_path / n) for n in [*plain, "g.service", "pin.service"]]
    r = vulcano("start", "--block-timeout", "30", *files)
    assert r.exit_code == 0, r.output
    before = wait_for(
        lambda: where_running(store, [*plain, "g.service", "pin.service"]), 20, "all run"
    )
    assert GONE in {m for n in plain for m in before[n]}, before  # it had units to move
    assert sorted(before["g.service"]) == sorted([GONE, *KEPT])

    r = vulcano("machine", "remove", "m0-go", "--block-timeout", "30")
    assert r.exit_code == 0, r.output
    assert f"Machine {GONE} removed, subnet {subnet.subnet} released" in r.output
    assert "Unit pin.service cannot be placed: no machine matches MachineID" in r.output

    keys = dump(client)
    assert KS.machine(GONE) not in keys and KS.machine_ip(GONE_IP) not in keys
    assert KS.subnet(str(subnet.subnet)) not in keys
    assert KS.subnet(str(kept_subnet.subnet)) in keys  # another machine's is left alone
    assert not [k for k in keys if k.startswith(KS.machine_schedule(GONE))]
    assert not [k for k in keys if k.startswith(KS.unit_states) and k.endswith("/" + GONE)]
    assert KS.machine_restarting(GONE) not in keys  # it did not stop as for a restart
    after = where_running(store, [*plain, "g.service"])
    assert after is not None
    assert {m for n in plain for m in after[n]} <= set(KEPT)
    assert sorted(after["g.service"]) == KEPT
    failed = [s for s in store.machine_states() if s.active == "failed"]
    assert failed == []
    assert not pids_of(f"{marker}-pin.service")  # its units were stopped there

    # the agent there, still running, is refused when it registers again, and leaves
    thread.join(timeout=15)
    assert not thread.is_alive() and agent.registration.decommissioned.is_set()
    threading.Event().wait(4)  # longer than its TTL
    assert client.get(KS.machine(GONE))[0] is None
    with pytest.raises(MachineDecommissioned):
        lease_subnet(client, GONE, GONE_IP)
    again = whole_agent(etcd, tmp_path / "again")
    with pytest.raises(MachineDecommissioned, match="removed from the cluster on purpose"):
        again.start()
    again.shutdown()

    [entry] = [e for e in AuditLog(open_store(state_dir)).entries() if e.action == "machine-remove"]
    assert entry.target == GONE and f"released subnet {subnet.subnet}" in entry.detail
    assert "pin.service cannot be placed" in entry.detail


def test_an_unknown_id_is_refused_and_changes_nothing(
    vulcano: Invoke, client: etcd3.Etcd3Client
) -> None:
    announce(client)
    before = dump(client)
    r = vulcano("machine", "remove", "nosuch")
    assert r.exit_code == 1 and "no machine nosuch in the cluster" in r.output
    assert dump(client) == before


def test_an_ambiguous_leading_part_is_refused(vulcano: Invoke, client: etcd3.Etcd3Client) -> None:
    for mid in ("abc1", "abc2"):
        announce(client, Machine(id=mid, public_ip=f"10.0.0.{mid[-1]}"))
    before = dump(client)
    r = vulcano("machine", "remove", "abc")
    assert r.exit_code == 1 and "machine id abc is ambiguous: abc1, abc2" in r.output
    assert dump(client) == before


def test_units_that_do_not_move_time_out_and_leave_the_machine_marked(
    vulcano: Invoke, client: etcd3.Etcd3Client, store: Registry, state_dir: Path
) -> None:
    machine = Machine(id="stuck1", public_ip="10.0.0.9")
    announce(client, machine)
    store.submit([UnitSource("a.service", "[Service]\nExecStart=/bin/true\n")])
    store.set_desired(["a.service"], DesiredState.LAUNCHED)
    client.put(KS.assignment(machine.id, "a.service"), "{}")  # no engine runs to move it
    r = vulcano("machine", "remove", "stuck1", "--block-timeout", "0.5")
    assert (
        r.exit_code == 1
        and "timed out" in r.output
        and "run `vulcano machine remove` again" in r.output
    )
    assert "a.service: leaving stuck1" in r.output
    keys = dump(client)
    assert KS.machine(machine.id) in keys  # still there
    assert json.loads(keys[KS.machine_decommissioned(machine.id)])["machine_id"] == "stuck1"
    [marked] = AuditLog(open_store(state_dir)).entries()
    assert (marked.action, marked.target) == ("machine-decommission", "stuck1")
    assert marked.detail == "1 unit(s) to move: a.service"
    store.destroy(["a.service"])  # the unit goes another way: a second run finishes
    client.delete(KS.assignment(machine.id, "a.service"))  # as the engine would
    r = vulcano("machine", "remove", "stuck1", "--block-timeout", "5")
    assert r.exit_code == 0, r.output
    assert KS.machine(machine.id) not in dump(client)
    actions = [e.action for e in AuditLog(open_store(state_dir)).entries()]
    assert actions == ["machine-decommission", "machine-remove"]  # marked once


def test_a_machine_without_units_goes_at_once(
    cluster: object, client: etcd3.Etcd3Client, state_dir: Path
) -> None:
    from container.services.audit import Actor
    from container.services.cluster import Cluster

    announce(client)
    state_dir.mkdir(parents=True)
    log = AuditLog(open_store(state_dir))
    endpoint = cluster.endpoints  # type: ignore[attr-defined]
    with Cluster(endpoint, audit=log, actor=Actor("alice", "panel")) as audited:
        done = decommission.remove_machine(audited, "0123456789abcdef", timeout=1)
    assert done.moves == {} and done.subnets == []
    assert client.get(KS.machine("0123456789abcdef"))[0] is None
    assert [(e.actor, e.action, e.detail) for e in log.entries()] == [
        ("alice", "machine-decommission", "0 unit(s) to move"),
        ("alice", "machine-remove", "no units"),
    ]
