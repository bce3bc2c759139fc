"""Snapshot-then-watch over etcd prefixes: the one way the agent and the CLI learn changes.

A reader takes one consistent snapshot (a transaction of range reads, so every prefix is
seen at the same revision), then watches every prefix from the next revision. Events go
to a queue; a broken watch puts a ``Resync`` marker, and the reader starts over.

The watch is our own gRPC Watch stream, read by a thread of its own: python3-etcd3's
shared watcher thread dies on a stream error without telling its callbacks, so a lost
watch would go unnoticed.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc  # type: ignore[import-untyped]
from etcd3 import etcdrpc, utils

from vulcano import policy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    key: str
    value: bytes | None  # None: deleted
    lease: int
    revision: int


class Resync(Exception):
    """The watch broke (etcd restarted, compaction, network) or was cancelled: snapshot again."""


def snapshot(client: Any, prefixes: list[str]) -> tuple[int, list[list[Change]]]:
    """Every key under each prefix, all at one revision; returns (revision, changes)."""
    request = etcdrpc.TxnRequest(
        compare=[],
        success=[
            etcdrpc.RequestOp(
                request_range=etcdrpc.RangeRequest(
                    key=utils.to_bytes(p), range_end=utils.prefix_range_end(utils.to_bytes(p))
                )
            )
            for p in prefixes
        ],
        failure=[],
    )
    try:
        response = client.kvstub.Txn(
            request, client.timeout, credentials=client.call_credentials, metadata=client.metadata
        )
    except grpc.RpcError as exc:
        # as the client's own calls do: mark the member failed (the next call goes to
        # another) and raise etcd3's exception for the gRPC status
        client._manage_grpc_errors(exc)
        raise
    out: list[list[Change]] = []
    for r in response.responses:
        out.append(
            [
                Change(kv.key.decode(), kv.value, kv.lease, kv.mod_revision)
                for kv in r.response_range.kvs
            ]
        )
    return int(response.header.revision), out


def current_revision(client: Any) -> int:
    """etcd's revision now: a watch from the next one misses nothing after this call."""
    revision, _ = snapshot(client, [])
    return revision


class PrefixWatch:
    """Watch prefixes from a revision, feeding Change lists into ``events``.

    Every prefix is one watch on a single gRPC stream; prefixes must not overlap (a key
    under two of them would be reported twice). Changes of one prefix arrive in revision
    order. The last item ever put is one ``Resync``: when the stream is lost (etcd
    stopped or unreachable, a revision compacted, etcd cancelled a watch) and when
    ``cancel`` ends the watch. Nothing raises from here: even a stream that cannot be
    opened is reported as ``Resync``.
    """

    def __init__(self, client: Any, prefixes: list[str], start_revision: int) -> None:
        self.events: queue.Queue[list[Change] | Resync] = queue.Queue()
        self._client = client
        self._creates = [
            etcdrpc.WatchRequest(
                create_request=etcdrpc.WatchCreateRequest(
                    key=utils.to_bytes(p),
                    range_end=utils.prefix_range_end(utils.to_bytes(p)),
                    start_revision=start_revision,
                )
            )
            for p in prefixes
        ]
        self._close_requests: queue.Queue[None] = queue.Queue()
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._call: Any = None
        self._feeder: threading.Thread | None = None  # gRPC's thread reading _requests
        self._reader = threading.Thread(target=self._read, name="etcd-watch", daemon=True)
        self._reader.start()

    def _requests(self) -> Iterator[Any]:
        """The request side of the stream: the create requests, then open until closed."""
        self._feeder = threading.current_thread()
        yield from self._creates
        self._close_requests.get()

    def _read(self) -> None:
        reason = "watch cancelled"
        try:
            with self._lock:
                if self._cancelled.is_set():
                    return
                stub = etcdrpc.WatchStub(self._client.channel)
                self._call = stub.Watch(
                    self._requests(),
                    credentials=self._client.call_credentials,
                    metadata=self._client.metadata,
                )
            for response in self._call:
                if response.canceled or response.compact_revision:
                    reason = "etcd ended the watch: " + (
                        response.cancel_reason
                        or f"revision compacted (to {response.compact_revision})"
                    )
                    return
                changes = [change_of(event) for event in response.events]
                if changes:
                    self.events.put(changes)
            reason = "watch stream ended"
        except Exception as exc:
            reason = f"watch stream lost: {_describe(exc)}"
        finally:
            if self._cancelled.is_set():
                reason = "watch cancelled"
            self._close()
            self.events.put(Resync(reason))

    def _close(self) -> None:
        with self._lock:
            if self._call is not None:
                self._call.cancel()
        self._close_requests.put(None)

    def cancel(self) -> None:
        """End the watch and its threads (from any thread); returns once they are gone."""
        self._cancelled.set()
        self._close()
        for thread in (self._reader, self._feeder):
            if thread is not None and thread is not threading.current_thread():
                thread.join(policy.WATCH_CANCEL_TIMEOUT)
                if thread.is_alive():
                    log.warning("watch thread %s did not end when cancelled", thread.name)


def change_of(event: Any) -> Change:
    """A watch event as a Change."""
    kv = event.kv
    if event.type == etcdrpc.kv_pb2.Event.DELETE:
        return Change(kv.key.decode(), None, 0, kv.mod_revision)
    return Change(kv.key.decode(), kv.value, kv.lease, kv.mod_revision)


def _describe(exc: Exception) -> str:
    code = getattr(exc, "code", None)
    details = getattr(exc, "details", None)
    if callable(code) and callable(details):  # a grpc.RpcError from the stream
        return f"{code()}: {details()}"
    return repr(exc)
