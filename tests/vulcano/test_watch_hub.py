"""vulcano/watch_hub.py against a real etcd: many watches on one stream, told apart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vulcano import watch_hub
from vulcano.etcd import connect
from vulcano.lab import services
from vulcano.watch import Change, PrefixWatch, Resync, current_revision


@pytest.fixture
def client(etcd: services.Etcd) -> Iterator[Any]:
    c = connect(etcd.endpoint)
    yield c
    c.close()


def collect(watch: watch_hub.Watch, count: int, timeout: float = 10.0) -> list[Change]:
    changes: list[Change] = []
    deadline = time.monotonic() + timeout
    while len(changes) < count:
        item = watch.events.get(timeout=max(0.0, deadline - time.monotonic()))
        assert not isinstance(item, Resync), f"unexpected resync: {item}"
        changes.extend(item)
    return changes


def resync_within(watch: watch_hub.Watch, timeout: float = 10.0) -> Resync:
    deadline = time.monotonic() + timeout
    while True:
        item = watch.events.get(timeout=max(0.0, deadline - time.monotonic()))
        if isinstance(item, Resync):
            return item


def test_without_a_hub_a_watch_is_a_prefix_watch_of_its_own(client: Any) -> None:
    w = watch_hub.open_watch(client, ["/hub/a/"], current_revision(client) + 1)
    try:
        assert isinstance(w, PrefixWatch)
    finally:
        w.cancel()


def test_each_watcher_on_the_hub_gets_its_own_prefixes_changes_only(client: Any) -> None:
    watch_hub.attach(client)
    start = current_revision(client) + 1
    client.put("/hub/a/before", "1")  # after the start revision: delivered too
    watches = [watch_hub.open_watch(client, [f"/hub/{n}/"], start) for n in "abc"]
    two = watch_hub.open_watch(client, ["/hub/a/", "/hub/b/"], start)
    try:
        client.put("/hub/b/x", "2")
        client.put("/hub/c/y", "3")
        client.put("/hub/d/z", "4")  # watched by no one
        assert [ch.key for ch in collect(watches[0], 1)] == ["/hub/a/before"]
        assert [ch.key for ch in collect(watches[1], 1)] == ["/hub/b/x"]
        assert [(ch.key, ch.value) for ch in collect(watches[2], 1)] == [("/hub/c/y", b"3")]
        assert sorted(ch.key for ch in collect(two, 2)) == ["/hub/a/before", "/hub/b/x"]
        client.delete("/hub/c/y")
        [deleted] = collect(watches[2], 1)
        assert deleted.key == "/hub/c/y" and deleted.value is None
        for w in (*watches, two):
            assert w.events.empty()
    finally:
        for w in (*watches, two):
            w.cancel()


def test_a_cancelled_watch_ends_with_a_resync_and_the_others_go_on(client: Any) -> None:
    watch_hub.attach(client)
    start = current_revision(client) + 1
    gone = watch_hub.open_watch(client, ["/hub/a/"], start)
    kept = watch_hub.open_watch(client, ["/hub/b/"], start)
    try:
        gone.cancel()
        assert "cancelled" in str(resync_within(gone))
        client.put("/hub/a/after", "1")
        client.put("/hub/b/after", "1")
        assert [ch.key for ch in collect(kept, 1)] == ["/hub/b/after"]
        time.sleep(0.2)  # the put under a/ would have arrived by now
        assert gone.events.empty()
    finally:
        kept.cancel()


def test_a_lost_stream_resyncs_every_watcher_and_a_new_watch_opens_a_new_one(
    tmp_path: Path,
) -> None:
    with services.etcd_server(tmp_path) as member:
        c = connect(member.endpoint)
        try:
            watch_hub.attach(c)
            start = current_revision(c) + 1
            watches = [watch_hub.open_watch(c, [f"/hub/{n}/"], start) for n in "ab"]
            c.put("/hub/a/x", "1")
            collect(watches[0], 1)
            member.stop()
            for w in watches:
                assert "watch stream" in str(resync_within(w, 30))  # lost, or ended
            member.start()
            member.wait_healthy()
            again = watch_hub.open_watch(c, ["/hub/a/"], current_revision(c) + 1)
            c.put("/hub/a/y", "2")
            assert [ch.key for ch in collect(again, 1, 30)] == ["/hub/a/y"]
            again.cancel()
        finally:
            c.close()
