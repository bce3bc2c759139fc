"""The audit log itself: entries kept in order, filtered, and the unit-file diffs."""

from __future__ import annotations

from pathlib import Path

import pytest

from container.services.audit import Actor, AuditLog, unit_diff
from container.store import Store, open_store

BOB = Actor("bob@host", "cli")


def test_entries_come_back_oldest_first_and_limit_keeps_the_latest(audit_log: AuditLog) -> None:
    for i in range(5):
        audit_log.record(BOB, "start", f"u{i}.service", cluster="c", at=100.0 + i)
    got = audit_log.entries(limit=3)
    assert [e.target for e in got] == ["u2.service", "u3.service", "u4.service"]
    assert got[0].actor == "bob@host" and got[0].face == "cli" and got[0].cluster == "c"


def test_entries_filter_by_target_and_since(audit_log: AuditLog) -> None:
    audit_log.record(BOB, "submit", "web@.service", at=1.0)
    audit_log.record(BOB, "start", "web@1.service", at=2.0)
    audit_log.record(BOB, "start", "webby.service", at=3.0)
    audit_log.record(BOB, "start", "db.service", at=4.0)
    assert [e.target for e in audit_log.entries(target="db.service")] == ["db.service"]
    template = audit_log.entries(target="web@.service")
    assert [e.target for e in template] == ["web@.service", "web@1.service"]
    assert [e.at for e in audit_log.entries(since=3.0)] == [3.0, 4.0]


def test_a_target_with_like_wildcards_matches_only_itself(audit_log: AuditLog) -> None:
    audit_log.record(BOB, "start", "a_b@1.service")
    audit_log.record(BOB, "start", "axb@1.service")
    assert [e.target for e in audit_log.entries(target="a_b@.service")] == ["a_b@1.service"]


def test_entries_survive_reopening_the_database(state_dir: Path, audit_log: AuditLog) -> None:
    audit_log.record(BOB, "destroy", "db.service", diff="-x\n")
    again = AuditLog(open_store(state_dir))
    [entry] = again.entries()
    assert (entry.action, entry.target, entry.diff) == ("destroy", "db.service", "-x\n")


def test_a_first_submit_is_the_whole_file_added() -> None:
    diff = unit_diff("db.service", None, "[Service]\nExecStart=/bin/true\n")
    assert diff.splitlines() == [
        "--- /dev/null",
        "+++ b/db.service",
        "@@ -0,0 +1,2 @@",
        "+[Service]",
        "+ExecStart=/bin/true",
    ]


def test_a_replace_shows_only_what_changed() -> None:
    old = "[Service]\nExecStart=/bin/true\nRestart=no\n"
    new = "[Service]\nExecStart=/bin/false\nRestart=no\n"
    lines = unit_diff("db.service", old, new).splitlines()
    assert lines[:2] == ["--- a/db.service", "+++ b/db.service"]
    assert "-ExecStart=/bin/true" in lines and "+ExecStart=/bin/false" in lines
    assert " [Service]" in lines


def test_a_missing_final_newline_is_said_and_same_text_is_no_diff() -> None:
    assert unit_diff("a.service", "x\n", "x\n") == ""
    assert "+x (no newline at end of file)" in unit_diff("a.service", None, "x")


def test_the_log_opens_its_database_only_when_first_used(tmp_path: Path) -> None:
    opened: list[Path] = []

    def opener() -> Store:
        opened.append(tmp_path)
        return open_store(tmp_path)

    log = AuditLog(opener)
    assert opened == []
    log.record(BOB, "start", "a.service")
    log.record(BOB, "start", "b.service")
    assert opened == [tmp_path] and len(log.entries()) == 2


def test_an_audited_cluster_needs_an_actor(audit_log: AuditLog) -> None:
    from container.services.cluster import Cluster

    with pytest.raises(TypeError, match="needs the actor"):
        Cluster(audit=audit_log)
