"""fleetctl's commands against a real etcd: desired state, content by hash, columns."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import etcd3
import pytest
from click.testing import CliRunner, Result

from container.cli import main
from vulcano.keyspace import Keyspace
from vulcano.lab.services import Etcd
from vulcano.units import content_hash

WEB = (
    "[Unit]\nDescription=web %i\n\n[Service]\nExecStart=/bin/sleep 1000\n\n"
    "[X-Fleet]\nConflicts=web@*\n"
)
DB = "[Service]\nExecStart=/bin/sleep 1000\n"
KS = Keyspace()

Invoke = Callable[..., Result]


@pytest.fixture
def client(etcd: Etcd) -> etcd3.Etcd3Client:
    host, port = etcd.host_port
    c = etcd3.client(host=host, port=port, timeout=5)
    yield c
    c.close()


@pytest.fixture
def vulcano(etcd: Etcd) -> Invoke:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, ["--endpoint", etcd.endpoint, *args], catch_exceptions=False)

    return invoke


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "web@.service").write_text(WEB)
    (tmp_path / "db.service").write_text(DB)
    (tmp_path / "bad.service").write_text("[X-Fleet]\nMachineID=abc\nGlobal=true\n")
    return tmp_path


def dump(client: etcd3.Etcd3Client) -> dict[str, bytes]:
    return {m.key.decode(): v for v, m in client.get_prefix("/")}


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


def test_list_machines_shortens_ids_unless_full(vulcano: Invoke, client: etcd3.Etcd3Client) -> None:
    record = {
        "id": "0123456789abcdef",
        "hostname": "h1",
        "public_ip": "10.9.0.1",
        "metadata": {"region": "eu", "disk": "ssd"},
        "version": "1",
    }
    client.put(KS.machine(record["id"]), json.dumps(record))
    r = vulcano("list-machines")
    assert r.output.split("\n")[:2] == [
        "MACHINE\tIP\tMETADATA",
        "01234567...\t10.9.0.1\tdisk=ssd,region=eu",
    ]
    r = vulcano("list-machines", "--full", "--no-legend")
    assert r.output.startswith("0123456789abcdef\t")


def test_unreachable_etcd_is_a_clear_error() -> None:
    from vulcano.lab.ports import reserve_port

    r = CliRunner().invoke(main, ["--endpoint", f"http://127.0.0.1:{reserve_port()}", "list-units"])
    assert r.exit_code == 1 and "etcd:" in r.output


def test_bad_endpoint_is_a_usage_error() -> None:
    r = CliRunner().invoke(main, ["--endpoint", "ftp://x", "list-units"])
    assert r.exit_code == 2 and "scheme must be http" in r.output


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


def test_bad_prefix_is_a_usage_error(etcd: Etcd) -> None:
    r = CliRunner().invoke(main, ["--endpoint", etcd.endpoint, "--prefix", "vulcano", "list-units"])
    assert r.exit_code == 2 and "must start and end with '/'" in r.output


def test_units_live_under_the_given_prefix(
    etcd: Etcd, files: Path, client: etcd3.Etcd3Client
) -> None:
    r = CliRunner().invoke(
        main,
        ["--endpoint", etcd.endpoint, "--prefix", "/other/", "submit", str(files / "db.service")],
    )
    assert r.exit_code == 0, r.output
    assert client.get("/other/units/db.service")[0] is not None
    assert client.get(KS.unit_spec("db.service"))[0] is None


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
