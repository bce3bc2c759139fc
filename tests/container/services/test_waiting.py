"""Waiting for units, against a real etcd: progress through the callback, failure, timeout.

The test writes the runner's reports; the callback writes the next one when it hears a
note, so the wait moves on without the test sleeping.
"""

from __future__ import annotations

import etcd3
import pytest

from container.services import units, waiting
from container.services.cluster import Cluster
from container.services.errors import UnitFailed, UnitUnplaceable, WaitTimedOut
from container.services.states import Standing
from tests.container.conftest import DB, KS, MACHINE, announce, report
from vulcano.records import DesiredState, Machine, UnitSource, UnitState

L = DesiredState.LAUNCHED


def db(active: str, sub: str, machine: str = MACHINE.id, reason: str = "") -> UnitState:
    return UnitState("db.service", machine, "loaded", active, sub, reason=reason)


def test_wait_reports_each_new_note_then_the_machine_reached(
    cluster: Cluster, client: etcd3.Etcd3Client
) -> None:
    announce(client)
    units.start(cluster, [UnitSource("db.service", DB)])
    report(client, db("activating", "start"))
    seen: list[waiting.Progress] = []
    after = {"activating (start)": db("activating", "auto-restart")}
    after["activating (auto-restart)"] = db("active", "running")

    def on_progress(p: waiting.Progress) -> None:
        seen.append(p)
        if p.note in after:
            report(client, after[p.note])

    waiting.wait_until(
        cluster, ["db.service"], L, timeout=30, on_progress=on_progress, poll_interval=0.01
    )
    assert [(p.unit, p.reached, p.note) for p in seen] == [
        ("db.service", False, "activating (start)"),
        ("db.service", False, "activating (auto-restart)"),
        ("db.service", True, "active (running)"),
    ]
    assert (seen[-1].desired, seen[-1].machine_id, seen[-1].machine) == (L, MACHINE.id, MACHINE)


def test_a_note_that_does_not_change_is_reported_once_until_the_timeout(
    cluster: Cluster,
) -> None:
    units.start(cluster, [UnitSource("db.service", DB)])
    seen: list[waiting.Progress] = []
    with pytest.raises(WaitTimedOut, match=r"timed out after 0s waiting for db.service to be"):
        waiting.wait_until(
            cluster, ["db.service"], L, timeout=0.2, on_progress=seen.append, poll_interval=0.01
        )
    assert [(p.reached, p.note) for p in seen] == [(False, "waiting")]


def test_a_failed_unit_stops_the_wait(cluster: Cluster, client: etcd3.Etcd3Client) -> None:
    units.start(cluster, [UnitSource("db.service", DB)])
    report(client, db("failed", "failed", reason="exit 1"))
    with pytest.raises(UnitFailed, match=r"^unit db.service failed \(failed\) exit 1$"):
        waiting.wait_until(cluster, ["db.service"], L, timeout=30)


def test_a_unit_on_several_machines_waits_for_every_one(
    cluster: Cluster, client: etcd3.Etcd3Client
) -> None:
    units.start(cluster, [UnitSource("db.service", DB)])
    report(client, db("active", "running"))
    report(client, db("activating", "start", machine="ffff0000"))
    assert not waiting.standings(cluster, ["db.service"], L)["db.service"].reached
    seen: list[waiting.Progress] = []

    def on_progress(p: waiting.Progress) -> None:
        seen.append(p)
        report(client, db("active", "running", machine="ffff0000"))

    waiting.wait_until(cluster, ["db.service"], L, on_progress=on_progress, poll_interval=0.01)
    assert [p.reached for p in seen] == [False, True]


def test_unload_is_reached_when_no_machine_has_the_unit(cluster: Cluster) -> None:
    units.submit(cluster, [UnitSource("db.service", DB)])
    units.unload(cluster, ["db.service"])
    seen: list[waiting.Progress] = []
    waiting.wait_until(cluster, ["db.service"], DesiredState.INACTIVE, on_progress=seen.append)
    assert [(p.reached, p.machine_id, p.machine) for p in seen] == [(True, None, None)]


def test_a_unit_the_engine_cannot_place_stops_the_wait_with_the_reason(
    cluster: Cluster, client: etcd3.Etcd3Client
) -> None:
    units.start(cluster, [UnitSource("db.service", DB)])
    client.put(KS.unit_reason("db.service"), "no machine matches MachineMetadata region=eu")
    seen: list[waiting.Progress] = []
    with pytest.raises(
        UnitUnplaceable, match=r"unit db.service cannot be placed: no machine match"
    ):
        waiting.wait_until(
            cluster, ["db.service"], L, timeout=30, on_progress=seen.append, poll_interval=0.01
        )
    assert [p.note for p in seen] == ["no machine matches MachineMetadata region=eu"]


def test_a_reason_the_engine_takes_back_at_once_does_not_stop_the_wait(
    cluster: Cluster, client: etcd3.Etcd3Client
) -> None:
    announce(client)
    units.start(cluster, [UnitSource("db.service", DB)])
    client.put(KS.unit_reason("db.service"), "no machines in the cluster")

    def on_progress(p: waiting.Progress) -> None:
        if p.note == "no machines in the cluster":  # the engine placed it meanwhile
            client.delete(KS.unit_reason("db.service"))
            report(client, db("active", "running"))

    waiting.wait_until(
        cluster, ["db.service"], L, timeout=30, on_progress=on_progress, poll_interval=0.01
    )


def test_a_global_unit_waits_for_a_matching_machine_that_has_not_reported_yet(
    cluster: Cluster, client: etcd3.Etcd3Client
) -> None:
    eu = [Machine(f"{c * 16}", metadata={"region": "eu"}) for c in "ab"]
    for m in [*eu, Machine("c" * 16, metadata={"region": "us"})]:
        announce(client, m)
    text = DB + "[X-Fleet]\nGlobal=true\nMachineMetadata=region=eu\n"
    units.start(cluster, [UnitSource("g.service", text)])

    def g(machine: str) -> UnitState:
        return UnitState("g.service", machine, "loaded", "active", "running")

    report(client, g(eu[0].id))  # the other eu machine has written nothing yet
    assert waiting.standings(cluster, ["g.service"], L)["g.service"] == Standing(
        False, "waiting for machine bbbbbbbb...", eu[0].id
    )
    seen: list[waiting.Progress] = []

    def on_progress(p: waiting.Progress) -> None:
        seen.append(p)
        if not p.reached:
            report(client, g(eu[1].id))

    waiting.wait_until(
        cluster, ["g.service"], L, timeout=30, on_progress=on_progress, poll_interval=0.01
    )
    assert [(p.reached, p.note) for p in seen] == [
        (False, "waiting for machine bbbbbbbb..."),
        (True, "active (running)"),
    ]
    client.put(KS.machine_decommissioned(eu[1].id), "")
    client.delete(KS.unit_state("g.service", eu[1].id))
    assert waiting.standings(cluster, ["g.service"], L)["g.service"].reached
