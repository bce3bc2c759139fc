"""A unit's journal through the service layer: the last lines, and following new ones."""

from __future__ import annotations

import threading

import etcd3
import pytest

from container.services import journal, units
from container.services.cluster import Cluster
from container.services.errors import UnitNotFound
from tests.container.conftest import DB, KS, publish_journal
from vulcano.records import UnitSource


def test_read_journal_gives_the_last_lines_and_the_count(
    cluster: Cluster, client: etcd3.Etcd3Client
) -> None:
    units.submit(cluster, [UnitSource("db.service", DB)])
    empty = journal.read_journal(cluster, "db.service", 10)
    assert (empty.lines, empty.seq) == ([], 0)
    publish_journal(client, "db.service", ["a", "b", "c"], 7)
    tail = journal.read_journal(cluster, "db.service", 2)
    assert (tail.lines, tail.seq) == (["b", "c"], 7)
    assert tail.revision > empty.revision
    assert journal.read_journal(cluster, "db.service", 0).lines == []


def test_read_journal_of_a_unit_not_submitted_is_refused(cluster: Cluster) -> None:
    with pytest.raises(UnitNotFound, match=r"unit nosuch.service is not submitted"):
        journal.read_journal(cluster, "nosuch.service", 10)


def test_follow_gives_only_new_lines_until_stopped(
    cluster: Cluster, client: etcd3.Etcd3Client
) -> None:
    units.submit(cluster, [UnitSource("db.service", DB)])
    publish_journal(client, "db.service", ["a", "b"], 2)
    tail = journal.read_journal(cluster, "db.service", 10)
    stop = threading.Event()
    lines = journal.follow_journal(cluster, "db.service", tail.seq, stop=stop)
    publish_journal(client, "db.service", ["a", "b", "c", "d"], 4)
    assert [next(lines), next(lines)] == ["c", "d"]
    publish_journal(client, "db.service", ["d", "e"], 5)  # the runner keeps the last lines only
    assert next(lines) == "e"
    stop.set()
    assert list(lines) == []


def test_follow_streams_every_update_from_the_tails_revision(
    cluster: Cluster, client: etcd3.Etcd3Client
) -> None:
    # The runner keeps only the last two lines. Three updates land before the follower
    # reads anything: a poll would see only the last (d, e) and lose c; the watch from
    # the tail's revision sees each update as it was written.
    units.submit(cluster, [UnitSource("db.service", DB)])
    publish_journal(client, "db.service", ["a", "b"], 2)
    tail = journal.read_journal(cluster, "db.service", 10)
    publish_journal(client, "db.service", ["b", "c"], 3)
    publish_journal(client, "db.service", ["c", "d"], 4)
    publish_journal(client, "db.service", ["d", "e"], 5)
    stop = threading.Event()
    lines = journal.follow_journal(
        cluster, "db.service", tail.seq, from_revision=tail.revision, stop=stop
    )
    assert [next(lines), next(lines), next(lines)] == ["c", "d", "e"]
    stop.set()
    assert list(lines) == []


def test_follow_ends_when_the_unit_is_destroyed(
    cluster: Cluster, client: etcd3.Etcd3Client
) -> None:
    units.submit(cluster, [UnitSource("db.service", DB)])
    publish_journal(client, "db.service", ["a"], 1)
    tail = journal.read_journal(cluster, "db.service", 10)
    lines = journal.follow_journal(cluster, "db.service", tail.seq, from_revision=tail.revision)
    client.delete(KS.unit_journal("db.service"))
    assert list(lines) == []
