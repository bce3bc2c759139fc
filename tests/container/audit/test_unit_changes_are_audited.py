"""Every unit change made through the service layer is audited, after etcd took it:
who, what, the diff; nothing for a refused change or one that changed nothing, and no
change at all while the audit log cannot be written."""

from __future__ import annotations

from pathlib import Path

import etcd3
import pytest

from container.services import units
from container.services.audit import AuditLog
from container.services.cluster import Cluster
from container.services.errors import StateDirError, UnitContentConflict, UnitNotFound
from container.services.provisioning import prepare_state_dir
from container.store import open_store
from tests.container.audit.conftest import ALICE
from tests.container.conftest import DB, WEB, dump
from vulcano.lab.services import Etcd
from vulcano.records import UnitSource
from vulcano.units import content_hash

DB2 = DB.replace("1000", "2000")


def actions(log: AuditLog) -> list[tuple[str, str, str]]:
    return [(e.action, e.target, e.detail) for e in log.entries(limit=100)]


def test_the_whole_lifecycle_is_recorded_as_its_actor(
    audited: Cluster, audit_log: AuditLog
) -> None:
    units.submit(audited, [UnitSource("db.service", DB)])
    units.load(audited, [UnitSource("db.service")])
    units.start(audited, [UnitSource("db.service")])
    units.stop(audited, ["db.service"])
    units.unload(audited, ["db.service"])
    units.destroy(audited, ["db.service"])
    assert actions(audit_log) == [
        ("submit", "db.service", ""),
        ("load", "db.service", "inactive -> loaded"),
        ("start", "db.service", "loaded -> launched"),
        ("stop", "db.service", "launched -> loaded"),
        ("unload", "db.service", "loaded -> inactive"),
        ("destroy", "db.service", ""),
    ]
    entries = audit_log.entries()
    assert {(e.actor, e.face, e.cluster) for e in entries} == {("alice", "panel", "test")}
    assert entries[0].diff.startswith("--- /dev/null\n+++ b/db.service\n")
    assert "+ExecStart=/bin/sleep 1000" in entries[0].diff
    assert "-ExecStart=/bin/sleep 1000" in entries[-1].diff
    assert entries[-1].diff.startswith("--- a/db.service\n+++ /dev/null\n")


def test_a_replace_records_the_diff_between_the_old_and_the_new_file(
    audited: Cluster, audit_log: AuditLog
) -> None:
    units.submit(audited, [UnitSource("db.service", DB)])
    units.start(audited, [UnitSource("db.service", DB2)], replace=True)
    replace, start = audit_log.entries()[1:]
    assert replace.action == "replace"
    assert replace.detail == f"hash {content_hash(DB)[:7]} -> {content_hash(DB2)[:7]}"
    assert "-ExecStart=/bin/sleep 1000\n+ExecStart=/bin/sleep 2000" in replace.diff
    assert replace.diff.startswith("--- a/db.service\n+++ b/db.service\n")
    assert (start.action, start.detail) == ("start", "inactive -> launched")


def test_what_changed_nothing_is_not_recorded_but_every_start_is(
    audited: Cluster, audit_log: AuditLog
) -> None:
    units.submit(audited, [UnitSource("db.service", DB)])
    units.submit(audited, [UnitSource("db.service", DB)])  # the same content
    units.submit(audited, [UnitSource("db.service")])  # a name alone
    units.unload(audited, ["db.service"])  # already inactive
    units.start(audited, [UnitSource("db.service")])
    units.start(audited, [UnitSource("db.service")])  # counted again: retries a failure
    units.load(audited, [UnitSource("db.service")])
    units.stop(audited, ["db.service"])  # already loaded
    assert actions(audit_log) == [
        ("submit", "db.service", ""),
        ("start", "db.service", "inactive -> launched"),
        ("start", "db.service", "launched -> launched"),
        ("load", "db.service", "launched -> loaded"),
    ]


def test_an_instance_made_from_its_template_says_so(audited: Cluster, audit_log: AuditLog) -> None:
    units.start(audited, [UnitSource("web@.service", WEB), UnitSource("web@1.service")])
    assert actions(audit_log) == [
        ("submit", "web@.service", ""),
        ("start", "web@1.service", "new instance of web@.service -> launched"),
    ]


def test_refused_changes_are_not_recorded(
    audited: Cluster, audit_log: AuditLog, client: etcd3.Etcd3Client
) -> None:
    units.submit(audited, [UnitSource("db.service", DB)])
    with pytest.raises(UnitContentConflict):
        units.submit(audited, [UnitSource("db.service", DB2)])
    with pytest.raises(UnitNotFound):
        units.start(audited, [UnitSource("nosuch.service")])
    with pytest.raises(UnitNotFound):
        units.destroy(audited, ["db.service", "nosuch.service"])
    with pytest.raises(UnitNotFound):
        units.submit(audited, [UnitSource("nosuch.service")])
    assert actions(audit_log) == [("submit", "db.service", "")]


@pytest.mark.parametrize(
    "change",
    [
        lambda c: units.submit(c, [UnitSource("db.service", DB)]),
        lambda c: units.start(c, [UnitSource("web@.service", WEB), UnitSource("web@1.service")]),
        lambda c: units.stop(c, ["old.service"]),
        lambda c: units.destroy(c, ["old.service"]),
    ],
    ids=["submit", "start", "stop", "destroy"],
)
def test_no_change_is_made_while_the_audit_log_cannot_be_written(
    etcd: Etcd, tmp_path: Path, client: etcd3.Etcd3Client, change: object
) -> None:
    with Cluster(etcd.endpoint) as plain:
        units.start(plain, [UnitSource("old.service", DB)])
    before = dump(client)
    blocked = tmp_path / "state"
    blocked.write_text("a file where the state directory should be")
    log = AuditLog(lambda: open_store(prepare_state_dir(blocked)))
    with (
        Cluster(etcd.endpoint, audit=log, actor=ALICE) as cluster,
        pytest.raises(StateDirError, match=str(blocked)),
    ):
        change(cluster)  # type: ignore[operator]
    assert dump(client) == before


def test_an_unaudited_cluster_records_nowhere_and_still_works(
    cluster: Cluster, client: etcd3.Etcd3Client
) -> None:
    assert units.start(cluster, [UnitSource("db.service", DB)]) == ["db.service"]
    assert cluster.audit is None and dump(client)
