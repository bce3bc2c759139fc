"""`vulcano audit`: changes made with the CLI are recorded as user@host and shown as
fleetctl shows its lists; the database lives in the state directory."""

from __future__ import annotations

import getpass
import json
import socket
from pathlib import Path

import etcd3
from click.testing import CliRunner

from container.cli import main
from tests.container.conftest import Invoke, dump
from vulcano.lab.services import Etcd

ME = f"{getpass.getuser()}@{socket.gethostname()}"


def test_cli_changes_are_recorded_as_the_os_user_at_this_host(vulcano: Invoke, files: Path) -> None:
    assert vulcano("submit", str(files / "db.service")).exit_code == 0
    assert vulcano("start", "--no-block", "db").exit_code == 0
    r = vulcano("audit")
    assert r.exit_code == 0, r.output
    header, submit, start = r.output.splitlines()
    assert header.split("\t") == ["TIME", "ACTOR", "FACE", "ACTION", "TARGET", "DETAIL"]
    assert submit.split("\t")[1:] == [ME, "cli", "submit", "db.service", "-"]
    assert start.split("\t")[1:] == [ME, "cli", "start", "db.service", "inactive -> launched"]
    assert submit.split("\t")[0].endswith(" UTC")


def test_audit_json_carries_the_diff_and_the_cluster(
    vulcano: Invoke, files: Path, etcd: Etcd
) -> None:
    vulcano("submit", str(files / "db.service"))
    [entry] = json.loads(vulcano("audit", "--json").output)
    assert entry["action"] == "submit" and entry["actor"] == ME
    assert entry["cluster"] == f"/vulcano/ at {etcd.endpoint}"
    assert entry["diff"].startswith("--- /dev/null\n+++ b/db.service\n")


def test_audit_filters_by_unit_and_limits_to_the_latest(vulcano: Invoke, files: Path) -> None:
    vulcano("submit", str(files / "db.service"), str(files / "web@.service"))
    vulcano("start", "--no-block", "web@1", "web@2", "db")
    r = vulcano("audit", "--no-legend", "--unit", "web@.service", "--fields", "action,target")
    assert r.output.splitlines() == [
        "submit\tweb@.service",
        "start\tweb@1.service",
        "start\tweb@2.service",
    ]
    r = vulcano("audit", "--no-legend", "--unit", "db", "--fields", "action")
    assert r.output.splitlines() == ["submit", "start"]
    r = vulcano("audit", "--no-legend", "-n", "2", "--fields", "target")
    assert r.output.splitlines() == ["web@2.service", "db.service"]


def test_audit_diff_prints_each_entry_with_its_diff(vulcano: Invoke, files: Path) -> None:
    vulcano("submit", str(files / "db.service"))
    vulcano("destroy", "db")
    r = vulcano("audit", "--diff")
    assert r.exit_code == 0, r.output
    assert "entry 1: submit db.service" in r.output and f"Actor:   {ME} (cli)" in r.output
    assert "+ExecStart=/bin/sleep 1000" in r.output
    assert "entry 2: destroy db.service" in r.output and "-ExecStart=/bin/sleep 1000" in r.output


def test_an_empty_log_prints_only_the_header(vulcano: Invoke) -> None:
    assert vulcano("audit").output == "TIME\tACTOR\tFACE\tACTION\tTARGET\tDETAIL\n"
    assert vulcano("audit", "--no-legend").output == ""
    assert vulcano("audit", "--json").output == "[]\n"


def test_reads_need_no_state_dir_but_a_change_refuses_without_one(
    etcd: Etcd, files: Path, tmp_path: Path, client: etcd3.Etcd3Client
) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("not a directory")
    runner = CliRunner(env={"VULCANO_STATE_DIR": str(blocked)})
    base = ["--endpoint", etcd.endpoint]
    assert runner.invoke(main, [*base, "list-units"]).exit_code == 0
    r = runner.invoke(main, [*base, "submit", str(files / "db.service")])
    assert r.exit_code == 1 and f"state directory {blocked}" in r.output
    assert dump(client) == {}


def test_audit_refuses_bad_flags(vulcano: Invoke) -> None:
    r = vulcano("audit", "--limit", "0")
    assert r.exit_code == 2 and "--limit" in r.output
    r = vulcano("audit", "--unit", "bad name!")
    assert r.exit_code == 2 and "--unit" in r.output
    r = vulcano("audit", "--since", "yesterday")
    assert r.exit_code == 2 and "--since" in r.output
    r = vulcano("audit", "--unit", "a", "--machine", "b")
    assert r.exit_code == 2 and "not both" in r.output
