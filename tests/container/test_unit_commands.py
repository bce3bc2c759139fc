"""fleetctl's unit commands against a real etcd: desired state, content by hash, columns,
waiting with progress, status."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import etcd3

from tests.container.conftest import (
    DB,
    KS,
    MACHINE,
    WEB,
    Invoke,
    announce,
    dump,
    publish_journal,
    report,
)
from vulcano.records import UnitState
from vulcano.units import content_hash


def test_submit_stores_content_once_by_hash_as_inactive(
    vulcano: Invoke, files: Path, client: etcd3.Etcd3Client
) -> None:
    r = vulcano("submit", str(files / "web@.service"), str(files / "db.service"))
    assert r.exit_code == 0, r.output
    keys = dump(client)
    assert keys[KS.unit_file(content_hash(WEB))] == WEB.encode()
    spec = json.loads(keys[KS.unit_spec("db.service")])
    assert spec["desired"] == "inactive" and spec["hash"] == content_hash(DB)
    r = vulcano("list-unit-files", "--no-legend")
    assert r.output.split("\n")[0].split("\t") == [
        "db.service",
        content_hash(DB)[:7],
        "inactive",
        "inactive",
        "-",
    ]


def test_list_unit_files_prints_fleetctl_columns(vulcano: Invoke, files: Path) -> None:
    vulcano("submit", str(files / "db.service"))
    r = vulcano("list-unit-files")
    assert r.output.split("\n")[0].split("\t") == ["UNIT", "HASH", "DSTATE", "STATE", "TARGET"]
    r = vulcano("list-unit-files", "--fields", "unit,dstate", "--no-legend")
    assert r.output == "db.service\tinactive\n"
    r = vulcano("list-unit-files", "--json", "--full")
    assert json.loads(r.output)[0]["hash"] == content_hash(DB)


def test_unknown_field_is_refused(vulcano: Invoke) -> None:
    r = vulcano("list-units", "--fields", "unit,colour")
    assert r.exit_code == 2 and "unknown field 'colour'" in r.output


def test_invalid_unit_file_is_refused_naming_the_line_and_nothing_changes(
    vulcano: Invoke, files: Path, client: etcd3.Etcd3Client
) -> None:
    r = vulcano("submit", str(files / "db.service"), str(files / "bad.service"))
    assert r.exit_code == 1
    assert "bad.service line 3: Global= cannot be combined with MachineID= (line 2)" in r.output
    assert dump(client) == {}


def test_resubmitting_other_content_needs_destroy_or_replace(
    vulcano: Invoke, files: Path, client: etcd3.Etcd3Client
) -> None:
    vulcano("submit", str(files / "db.service"))
    (files / "db.service").write_text(DB + "Restart=always\n")
    r = vulcano("submit", str(files / "db.service"))
    assert r.exit_code == 1 and "destroy it first or use --replace" in r.output
    assert json.loads(client.get(KS.unit_spec("db.service"))[0])["hash"] == content_hash(DB)
    # the same content again is fine
    (files / "db.service").write_text(DB)
    assert vulcano("submit", str(files / "db.service")).exit_code == 0
    (files / "db.service").write_text(DB + "Restart=always\n")
    r = vulcano("start", "--no-block", "--replace", str(files / "db.service"))
    assert r.exit_code == 0, r.output
    spec = json.loads(client.get(KS.unit_spec("db.service"))[0])
    assert spec["hash"] == content_hash(DB + "Restart=always\n") and spec["desired"] == "launched"


def test_desired_state_moves_with_the_commands(
    vulcano: Invoke, files: Path, client: etcd3.Etcd3Client
) -> None:
    def desired() -> str:
        return str(json.loads(client.get(KS.unit_spec("db.service"))[0])["desired"])

    vulcano("submit", str(files / "db.service"))
    assert vulcano("load", "--no-block", "db.service").exit_code == 0
    assert desired() == "loaded"
    assert vulcano("start", "--no-block", "db.service").exit_code == 0
    assert desired() == "launched"
    assert vulcano("stop", "--no-block", "db.service").exit_code == 0
    assert desired() == "loaded"
    assert vulcano("unload", "--no-block", "db.service").exit_code == 0
    assert desired() == "inactive"
    r = vulcano("destroy", "db.service")
    assert r.exit_code == 0 and "Destroyed db.service" in r.output
    assert client.get(KS.unit_spec("db.service"))[0] is None


def test_start_instantiates_a_submitted_template(
    vulcano: Invoke, files: Path, client: etcd3.Etcd3Client
) -> None:
    vulcano("submit", str(files / "web@.service"))
    r = vulcano("start", "--no-block", "web@1.service", "web@2.service")
    assert r.exit_code == 0, r.output
    spec = json.loads(client.get(KS.unit_spec("web@2.service"))[0])
    assert spec["desired"] == "launched" and spec["hash"] == content_hash(WEB)
    assert spec["options"]["conflicts"] == ["web@*"]
    r = vulcano("cat", "web@2.service")
    assert r.output == WEB


def test_unknown_units_are_refused_and_nothing_changes(
    vulcano: Invoke, files: Path, client: etcd3.Etcd3Client
) -> None:
    vulcano("submit", str(files / "db.service"))
    before = dump(client)
    r = vulcano("start", "--no-block", "db.service", "api@1.service")
    assert r.exit_code == 1
    assert "unit api@1.service is not submitted (nor its template api@.service)" in r.output
    assert dump(client) == before
    r = vulcano("start", "--no-block", "not a name")
    assert r.exit_code == 2 and "not a valid unit name" in r.output


def test_units_with_the_same_content_are_submitted_together(
    vulcano: Invoke, tmp_path: Path, client: etcd3.Etcd3Client
) -> None:
    paths = []
    for i in range(3):
        p = tmp_path / f"same{i}.service"
        p.write_text(DB)
        paths.append(str(p))
    r = vulcano("submit", *paths)
    assert r.exit_code == 0, r.output
    assert len([k for k in dump(client) if k.startswith(KS.unit_files)]) == 1


def test_destroy_and_replace_drop_content_no_unit_uses(
    vulcano: Invoke, files: Path, client: etcd3.Etcd3Client
) -> None:
    (files / "db2.service").write_text(DB)  # same content as db.service
    vulcano(
        "submit", str(files / "db.service"), str(files / "db2.service"), str(files / "web@.service")
    )
    vulcano("start", "--no-block", "web@1.service")
    assert vulcano("destroy", "db.service").exit_code == 0
    assert client.get(KS.unit_file(content_hash(DB)))[0] is not None  # db2 still uses it
    assert vulcano("destroy", "db2.service", "web@.service").exit_code == 0
    assert client.get(KS.unit_file(content_hash(DB)))[0] is None
    assert client.get(KS.unit_file(content_hash(WEB)))[0] is not None  # the instance uses it
    (files / "web@.service").write_text(WEB + "# v2\n")
    r = vulcano("submit", "--replace", str(files / "web@.service"))
    assert r.exit_code == 0, r.output
    assert client.get(KS.unit_file(content_hash(WEB)))[0] is not None  # web@1 still uses it
    assert vulcano("destroy", "web@1.service").exit_code == 0
    assert client.get(KS.unit_file(content_hash(WEB)))[0] is None
    assert client.get(KS.unit_file(content_hash(WEB + "# v2\n")))[0] is not None


def test_start_waits_until_launched_and_names_the_machine(
    vulcano: Invoke, files: Path, client: etcd3.Etcd3Client
) -> None:
    announce(client)
    report(client, UnitState("db.service", MACHINE.id, "loaded", "active", "running", 1.0))
    r = vulcano("start", str(files / "db.service"))
    assert r.exit_code == 0, r.output
    assert "Unit db.service launched on 01234567.../10.9.0.1" in r.output


def test_start_reports_a_failed_unit_and_stops_waiting(
    vulcano: Invoke, files: Path, client: etcd3.Etcd3Client
) -> None:
    failed = UnitState("db.service", MACHINE.id, "loaded", "failed", "failed", 1.0, "exit 1")
    timer = threading.Timer(0.5, report, (client, failed))  # the runner, while start waits
    timer.start()
    try:
        r = vulcano("start", "--block-timeout", "20", str(files / "db.service"))
    finally:
        timer.join()
    assert r.exit_code == 1 and "unit db.service failed (failed) exit 1" in r.output


def test_start_gives_up_after_its_block_timeout(vulcano: Invoke, files: Path) -> None:
    r = vulcano("start", "--block-timeout", "0", str(files / "db.service"))
    assert r.exit_code == 1
    assert "db.service: waiting" in r.output  # the progress note, on stderr
    assert "timed out after 0s waiting for db.service to be launched" in r.output


def test_stop_waits_until_loaded(vulcano: Invoke, files: Path, client: etcd3.Etcd3Client) -> None:
    vulcano("start", "--no-block", str(files / "db.service"))
    report(client, UnitState("db.service", MACHINE.id, "loaded", "inactive", "dead", 1.0))
    r = vulcano("stop", "db.service")
    assert r.exit_code == 0, r.output
    assert "Unit db.service loaded on 01234567..." in r.output


def test_status_shows_every_machine_and_exits_3_unless_active(
    vulcano: Invoke, files: Path, client: etcd3.Etcd3Client
) -> None:
    vulcano("start", "--no-block", str(files / "db.service"))
    announce(client)
    report(client, UnitState("db.service", MACHINE.id, "loaded", "active", "running", 0.0))
    publish_journal(client, "db.service", ["one", "two", "three"], 3)
    r = vulcano("status", "-n", "2", "db.service")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [
        "● db.service",
        f"   Loaded: loaded (desired launched, hash {content_hash(DB)[:7]})",
        "   Active: active (running) since -",
        f"  Machine: {MACHINE.id}/10.9.0.1",
        "",
        "two",
        "three",
    ]
    report(client, UnitState("db.service", MACHINE.id, "loaded", "failed", "failed", 0.0, "oom"))
    r = vulcano("status", "db.service")
    assert r.exit_code == 3 and "   Reason: oom" in r.output


def test_status_of_a_unit_not_submitted_is_an_error(vulcano: Invoke) -> None:
    r = vulcano("status", "nosuch.service")
    assert r.exit_code == 1 and "unit nosuch.service is not submitted" in r.output


def test_cat_of_a_unit_not_submitted_is_an_error(vulcano: Invoke) -> None:
    r = vulcano("cat", "nosuch.service")
    assert r.exit_code == 1 and "unit nosuch.service is not submitted" in r.output


def test_list_units_shows_units_not_placed_yet(
    vulcano: Invoke, files: Path, client: etcd3.Etcd3Client
) -> None:
    vulcano("submit", str(files / "db.service"), str(files / "web@.service"))
    vulcano("start", "--no-block", "db.service")
    r = vulcano("list-units", "--no-legend", "--fields", "unit,machine,active,sub,dstate")
    assert r.output == "db.service\t-\tinactive\tdead\tlaunched\n"


def test_start_of_a_unit_that_had_failed_waits_for_the_new_try(
    vulcano: Invoke, files: Path, client: etcd3.Etcd3Client
) -> None:
    # fleet left a failed unit failed on `start`; Vulcano tries it again (docs/fleet.md),
    # so the old failure report must not end the wait, only a new outcome does
    vulcano("start", "--no-block", str(files / "db.service"))
    starts = json.loads(client.get(KS.unit_spec("db.service"))[0])["starts"]
    announce(client)
    old = UnitState("db.service", MACHINE.id, "loaded", "failed", "failed", 1.0, "exit 1")
    report(client, old)
    r = vulcano("start", "--block-timeout", "0", "db")
    assert r.exit_code == 1
    assert "db.service: starting again (failed (failed) exit 1)" in r.output
    assert "timed out after 0s" in r.output
    assert json.loads(client.get(KS.unit_spec("db.service"))[0])["starts"] == starts + 1
    # while a start waits, the runner's new report (a new failure) ends it at once
    new = UnitState("db.service", MACHINE.id, "loaded", "failed", "failed", 2.0, "exit 2")
    timer = threading.Timer(0.5, report, (client, new))
    timer.start()
    try:
        r = vulcano("start", "--block-timeout", "20", "db")
    finally:
        timer.join()
    assert r.exit_code == 1 and "unit db.service failed (failed) exit 2" in r.output
