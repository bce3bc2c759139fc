"""The rows of list-machines, list-units, list-unit-files and status, as records."""

from __future__ import annotations

import etcd3

from container.services import listings, machines, status, units
from container.services.cluster import Cluster
from tests.container.conftest import DB, MACHINE, WEB, announce, publish_journal, report
from vulcano.records import DesiredState, UnitSource, UnitState


def test_list_machines_gives_the_records(cluster: Cluster, client: etcd3.Etcd3Client) -> None:
    announce(client)
    assert machines.list_machines(cluster) == [MACHINE]


def test_list_units_has_a_row_per_machine_and_for_units_not_placed(
    cluster: Cluster, client: etcd3.Etcd3Client
) -> None:
    announce(client)
    units.submit(cluster, [UnitSource("db.service", DB), UnitSource("web@.service", WEB)])
    units.start(cluster, [UnitSource("db.service"), UnitSource("web@1.service")])
    running = UnitState("web@1.service", MACHINE.id, "loaded", "active", "running")
    report(client, running)
    report(client, UnitState("web@1.service", "ffff0000", "loaded", "inactive", "dead"))
    rows = listings.list_units(cluster)
    assert [(r.name, r.machine_id, r.machine) for r in rows] == [
        ("db.service", None, None),  # launched, nobody has it yet
        ("web@1.service", MACHINE.id, MACHINE),
        ("web@1.service", "ffff0000", None),  # a machine no longer announced
    ]
    assert rows[0].spec is not None and rows[0].spec.desired == DesiredState.LAUNCHED
    assert rows[1].state == running


def test_list_unit_files_gives_fleets_state_and_target(
    cluster: Cluster, client: etcd3.Etcd3Client
) -> None:
    announce(client)
    units.submit(cluster, [UnitSource("db.service", DB)])
    units.start(cluster, [UnitSource("db.service")])
    client.put(f"/vulcano/schedule/{MACHINE.id}/db.service", "{}")
    report(client, UnitState("db.service", MACHINE.id, "loaded", "inactive", "dead"))
    (row,) = listings.list_unit_files(cluster)
    assert row.spec.name == "db.service" and row.spec.desired == DesiredState.LAUNCHED
    assert row.current == DesiredState.LOADED
    assert (row.target_id, row.target) == (MACHINE.id, MACHINE)


def test_status_gives_each_unit_with_its_machines_and_last_lines(
    cluster: Cluster, client: etcd3.Etcd3Client
) -> None:
    announce(client)
    units.start(cluster, [UnitSource("db.service", DB)])
    report(client, UnitState("db.service", MACHINE.id, "loaded", "active", "running"))
    publish_journal(client, "db.service", ["a", "b", "c"], 3)
    (found,) = status.unit_statuses(cluster, ["db.service"], lines=2)
    assert found.active and found.journal == ["b", "c"]
    assert [(i.machine_id, i.machine) for i in found.instances] == [(MACHINE.id, MACHINE)]


def test_status_yields_the_units_before_one_not_submitted(cluster: Cluster) -> None:
    units.submit(cluster, [UnitSource("db.service", DB)])
    found = status.unit_statuses(cluster, ["db.service", "nosuch.service"], lines=10)
    first = next(found)
    assert first.name == "db.service" and not first.active and first.journal == []
    try:
        next(found)
    except LookupError as exc:
        assert "unit nosuch.service is not submitted" in str(exc)
    else:
        raise AssertionError("nosuch.service was found")
