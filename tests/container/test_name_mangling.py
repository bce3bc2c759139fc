"""fleetctl's name mangling against a real etcd: ``vulcano start db`` means db.service."""

from __future__ import annotations

import json
from pathlib import Path

import etcd3

from tests.container.conftest import DB, KS, MACHINE, WEB, Invoke, publish_journal, report
from vulcano.records import UnitState
from vulcano.units import content_hash


def test_every_unit_command_appends_service_to_a_bare_name(
    vulcano: Invoke, files: Path, client: etcd3.Etcd3Client
) -> None:
    def desired() -> str:
        return str(json.loads(client.get(KS.unit_spec("db.service"))[0])["desired"])

    assert vulcano("submit", str(files / "db.service")).exit_code == 0
    assert vulcano("load", "--no-block", "db").exit_code == 0
    assert desired() == "loaded"
    assert vulcano("start", "--no-block", "db").exit_code == 0
    assert desired() == "launched"
    assert vulcano("stop", "--no-block", "db").exit_code == 0
    assert desired() == "loaded"
    assert vulcano("unload", "--no-block", "db").exit_code == 0
    assert desired() == "inactive"
    r = vulcano("destroy", "db")
    assert r.exit_code == 0 and "Destroyed db.service" in r.output


def test_cat_status_and_journal_mangle_too(
    vulcano: Invoke, files: Path, client: etcd3.Etcd3Client
) -> None:
    vulcano("start", "--no-block", str(files / "db.service"))
    report(client, UnitState("db.service", MACHINE.id, "loaded", "active", "running", 0.0))
    publish_journal(client, "db.service", ["hello"], 1)
    assert vulcano("cat", "db").output == DB
    r = vulcano("status", "db")
    assert r.exit_code == 0 and r.output.startswith("● db.service")
    assert vulcano("journal", "db").output == "hello\n"


def test_a_template_instance_by_bare_name(
    vulcano: Invoke, files: Path, client: etcd3.Etcd3Client
) -> None:
    vulcano("submit", str(files / "web@.service"))
    r = vulcano("start", "--no-block", "web@3")
    assert r.exit_code == 0, r.output
    spec = json.loads(client.get(KS.unit_spec("web@3.service"))[0])
    assert spec["hash"] == content_hash(WEB)


def test_a_file_without_a_type_is_submitted_as_a_service(
    vulcano: Invoke, tmp_path: Path, client: etcd3.Etcd3Client
) -> None:
    (tmp_path / "api").write_text(DB)
    r = vulcano("submit", str(tmp_path / "api"))
    assert r.exit_code == 0, r.output
    assert client.get(KS.unit_spec("api.service"))[0] is not None


def test_a_bare_name_not_submitted_is_named_with_its_type(vulcano: Invoke) -> None:
    r = vulcano("cat", "nosuch")
    assert r.exit_code == 1 and "unit nosuch.service is not submitted" in r.output
