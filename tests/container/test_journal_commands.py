"""journal against a real etcd: a unit's last lines, as its runner published them."""

from __future__ import annotations

from pathlib import Path

import etcd3
from click.testing import CliRunner

from container.cli.journal import journal
from container.services.cluster import Cluster
from tests.container.conftest import Invoke, publish_journal


def test_journal_prints_the_last_lines(
    vulcano: Invoke, files: Path, client: etcd3.Etcd3Client
) -> None:
    vulcano("submit", str(files / "db.service"))
    publish_journal(client, "db.service", ["one", "two", "three"], 3)
    r = vulcano("journal", "db.service")
    assert r.exit_code == 0 and r.output == "one\ntwo\nthree\n"
    r = vulcano("journal", "-n", "1", "db.service")
    assert r.output == "three\n"
    assert vulcano("journal", "-n", "0", "db.service").output == ""


def test_journal_of_a_unit_not_submitted_is_an_error(vulcano: Invoke) -> None:
    r = vulcano("journal", "nosuch.service")
    assert r.exit_code == 1 and "unit nosuch.service is not submitted" in r.output


def test_journal_runs_on_its_own_with_a_cluster_given(
    cluster: Cluster, files: Path, vulcano: Invoke, client: etcd3.Etcd3Client
) -> None:
    vulcano("submit", str(files / "db.service"))
    publish_journal(client, "db.service", ["hello"], 1)
    r = CliRunner().invoke(journal, ["db.service"], obj=cluster)
    assert r.exit_code == 0 and r.output == "hello\n"
