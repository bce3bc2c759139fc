"""vulcano/watch.py against a real etcd: what a watch delivers, and how it ends, on both
clients (python-etcd3's over gRPC, and the agent's over the JSON gateway)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vulcano import etcd as vulcano_etcd
from vulcano import etcdhttp
from vulcano.lab import services
from vulcano.lab.poll import wait_for
from vulcano.lab.ports import reserve_port
from vulcano.watch import Change, PrefixWatch, Resync, current_revision, snapshot

A = "/watchtest/a/"
B = "/watchtest/b/"
C = "/watchtest/c/"  # written, never watched


CLIENTS = {"grpc": vulcano_etcd.connect, "http": etcdhttp.connect}


@pytest.fixture(params=sorted(CLIENTS))
def connect(request: pytest.FixtureRequest) -> Any:
    return CLIENTS[request.param]


@pytest.fixture
def client(etcd: services.Etcd, connect: Any) -> Iterator[Any]:
    c = connect(etcd.endpoint)
    yield c
    c.close()


def collect(watch: PrefixWatch, count: int, timeout: float = 10.0) -> list[Change]:
    """The next ``count`` changes; fails on a Resync or when they are slow."""
    changes: list[Change] = []
    deadline = time.monotonic() + timeout
    while len(changes) < count:
        item = watch.events.get(timeout=max(0.0, deadline - time.monotonic()))
        assert not isinstance(item, Resync), f"unexpected resync: {item}"
        changes.extend(item)
    return changes


def resync_within(watch: PrefixWatch, timeout: float) -> Resync:
    """Wait for the Resync, skipping changes before it."""
    deadline = time.monotonic() + timeout
    while True:
        item = watch.events.get(timeout=max(0.0, deadline - time.monotonic()))
        if isinstance(item, Resync):
            return item


def watch_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t is not threading.current_thread()}


def test_changes_from_the_start_revision_arrive_in_order_for_each_prefix(client: Any) -> None:
    client.put(A + "before", "old")
    client.put(B + "before", "old")
    revision, parts = snapshot(client, [A, B])
    assert [[ch.key for ch in part] for part in parts] == [[A + "before"], [B + "before"]]
    # Written before the watch exists: it must catch up from the start revision.
    client.put(A + "x", "1")
    client.put(C + "x", "ignored")
    client.put(B + "y", "1")
    client.delete(A + "before")
    watch = PrefixWatch(client, [A, B], revision + 1)
    try:
        # the history first: then the stream is open, and what follows must come live
        # (written at once, they could still arrive as history of a stream opened late)
        changes = collect(watch, 3)
        lease = client.lease(60)
        client.put(A + "x", "2", lease=lease)
        client.put(B + "y", "2")
        client.delete(B + "y")
        changes += collect(watch, 3)
        with pytest.raises(queue.Empty):
            watch.events.get(timeout=0.5)  # nothing more, nothing from C
    finally:
        watch.cancel()
    for ch in changes:
        assert ch.revision > revision
    by_prefix = {
        p: [(ch.key, ch.value, ch.lease != 0) for ch in changes if ch.key.startswith(p)]
        for p in (A, B)
    }
    assert by_prefix[A] == [
        (A + "x", b"1", False),
        (A + "before", None, False),
        (A + "x", b"2", True),
    ]
    assert by_prefix[B] == [(B + "y", b"1", False), (B + "y", b"2", False), (B + "y", None, False)]
    for p in (A, B):
        revisions = [ch.revision for ch in changes if ch.key.startswith(p)]
        assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions)


def test_a_compacted_start_revision_is_a_resync(client: Any) -> None:
    client.put(A + "k", "1")
    old = current_revision(client)
    client.put(A + "k", "2")
    client.compact(current_revision(client))
    watch = PrefixWatch(client, [A], old)
    try:
        assert "compacted" in str(resync_within(watch, 10))
    finally:
        watch.cancel()


def test_an_unreachable_etcd_is_a_resync_not_an_error(connect: Any) -> None:
    client = connect(f"http://127.0.0.1:{reserve_port()}")
    try:
        watch = PrefixWatch(client, [A], 1)
        try:
            assert "lost" in str(resync_within(watch, 10))
        finally:
            watch.cancel()
    finally:
        client.close()


def test_cancel_while_etcd_is_unreachable_ends_the_watch_at_once(connect: Any) -> None:
    """The HTTP client tries every member for a while before a watch is lost; a cancel
    meanwhile ends it (cancel returns once its thread is gone: the Resync is there).
    gRPC's stream is lost at once: its Resync says so."""
    client = connect(f"http://127.0.0.1:{reserve_port()}")
    try:
        watch = PrefixWatch(client, [A], 1)
        time.sleep(0.2)  # the reader is trying by now
        watch.cancel()
        item = watch.events.get_nowait()
        assert isinstance(item, Resync) and watch.events.empty()
        assert any(why in str(item) for why in ("cancelled", "lost")), item
    finally:
        client.close()


def test_stopping_etcd_is_a_resync_and_a_new_snapshot_follows_it(
    tmp_path: Path, connect: Any
) -> None:
    with services.etcd_server(tmp_path) as member:
        client = connect(member.endpoint)
        try:
            revision, _ = snapshot(client, [A, B])
            before = watch_threads()
            watch = PrefixWatch(client, [A, B], revision + 1)
            try:
                client.put(B + "k", "1")
                assert [ch.key for ch in collect(watch, 1)] == [B + "k"]
                member.stop()
                assert "lost" in str(resync_within(watch, 10))
                # The Resync is the last item, and the watch's threads are gone.
                wait_for(lambda: not watch_threads() - before, 5, "watch threads end")
                with pytest.raises(queue.Empty):
                    watch.events.get(timeout=0.2)
            finally:
                watch.cancel()
            member.start()
            member.wait_healthy()
            revision, parts = answered(lambda: snapshot(client, [A, B]))
            assert [[ch.key for ch in part] for part in parts] == [[], [B + "k"]]
            watch = PrefixWatch(client, [A, B], revision + 1)
            try:
                client.put(A + "k", "2")
                assert [ch.key for ch in collect(watch, 1)] == [A + "k"]
            finally:
                watch.cancel()
        finally:
            client.close()


def answered(call: Any) -> Any:
    """call() once etcd answers it (the client reconnects after a restart)."""
    results: list[Any] = []
    wait_for(lambda: results.append(call()) or True, 15, "etcd after restart")
    return results[-1]


def test_cancel_ends_the_watch_and_its_threads_promptly(client: Any) -> None:
    current_revision(client)  # gRPC's own process-wide threads exist from here on
    before = watch_threads()
    watch = PrefixWatch(client, [A, B], current_revision(client) + 1)
    client.put(A + "k", "1")
    collect(watch, 1)
    assert len(watch_threads() - before) >= 1
    watch.cancel()
    # Ours: the stream's reader and gRPC's feeder of our requests, joined by cancel()
    # before it returns (what "promptly" means here; how long it takes is not asserted).
    ours = {"etcd-watch", "consume_request_iterator"}
    assert not [t.name for t in watch_threads() - before if any(n in t.name for n in ours)]
    # gRPC's spin thread for the channel ends by itself once its last call is done.
    wait_for(lambda: not watch_threads() - before, 2, "every watch thread ends")
    items = []
    while not watch.events.empty():
        items.append(watch.events.get_nowait())
    assert len(items) == 1 and isinstance(items[0], Resync) and "cancelled" in str(items[0])
    watch.cancel()  # twice is harmless
