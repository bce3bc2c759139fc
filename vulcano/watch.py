"""Snapshot-then-watch over etcd prefixes: the one way the agent and the CLI learn changes.

A reader takes one consistent snapshot (a transaction of range reads, so every prefix is
seen at the same revision), then watches every prefix from the next revision. Events go
to a queue; a broken watch puts a ``Resync`` marker, and the reader starts over.

The watch is a stream of our own, read by a thread of its own: python3-etcd3's shared
watcher thread dies on a stream error without telling its callbacks, so a lost watch
would go unnoticed. On the JSON-gateway client (`vulcano.etcdhttp`, the agent's) the
stream is a streamed HTTP response; on python-etcd3's, a gRPC Watch call
(`vulcano.watch_grpc`, loaded only for that client).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

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


class _Response(Protocol):
    canceled: bool
    compact_revision: int
    cancel_reason: str

    @property
    def changes(self) -> list[Change]: ...


class _Stream(Protocol):
    def responses(self) -> Iterator[Any]: ...

    def close(self) -> None: ...


def _is_http(client: Any) -> bool:
    from vulcano.etcdhttp import HttpClient

    return isinstance(client, HttpClient)


def snapshot(client: Any, prefixes: list[str]) -> tuple[int, list[list[Change]]]:
    """Every key under each prefix, all at one revision; returns (revision, changes)."""
    if not _is_http(client):
        from vulcano import watch_grpc

        return watch_grpc.snapshot(client, prefixes)
    revision, ranges = client.snapshot_ranges(prefixes)
    return revision, [
        [Change(kv.key.decode(), kv.value, kv.lease, kv.mod_revision) for kv in kvs]
        for kvs in ranges
    ]


def current_revision(client: Any) -> int:
    """etcd's revision now: a watch from the next one misses nothing after this call."""
    revision, _ = snapshot(client, [])
    return revision


def _stream(client: Any, prefixes: list[str], start_revision: int) -> _Stream:
    if _is_http(client):
        from vulcano.etcdhttp.watch import WatchStream

        return WatchStream(client, prefixes, start_revision)
    from vulcano import watch_grpc

    return watch_grpc.GrpcWatchStream(client, prefixes, start_revision)


class PrefixWatch:
    """Watch prefixes from a revision, feeding Change lists into ``events``.

    Every prefix is one watch on a single stream; prefixes must not overlap (a key
    under two of them would be reported twice). Changes of one prefix arrive in revision
    order. The last item ever put is one ``Resync``: when the stream is lost (etcd
    stopped or unreachable, a revision compacted, etcd cancelled a watch) and when
    ``cancel`` ends the watch. Nothing raises from here: even a stream that cannot be
    opened is reported as ``Resync``.
    """

    def __init__(self, client: Any, prefixes: list[str], start_revision: int) -> None:
        self.events: queue.Queue[list[Change] | Resync] = queue.Queue()
        self._client = client
        self._prefixes = prefixes
        self._start_revision = start_revision
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._stream: _Stream | None = None
        self._reader = threading.Thread(target=self._read, name="etcd-watch", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        reason = "watch cancelled"
        try:
            with self._lock:
                if self._cancelled.is_set():
                    return
                self._stream = stream = _stream(self._client, self._prefixes, self._start_revision)
            for response in stream.responses():
                if response.canceled or response.compact_revision:
                    reason = "etcd ended the watch: " + (
                        response.cancel_reason
                        or f"revision compacted (to {response.compact_revision})"
                    )
                    return
                changes = response.changes
                if changes:
                    self.events.put(changes)
            reason = "watch stream ended"
        except Exception as exc:
            reason = f"watch stream lost: {describe(exc)}"
        finally:
            if self._cancelled.is_set():
                reason = "watch cancelled"
            self._close()
            self.events.put(Resync(reason))

    def _close(self) -> None:
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()

    def cancel(self) -> None:
        """End the watch and its threads (from any thread); returns once they are gone."""
        self._cancelled.set()
        self._close()
        if self._reader is not threading.current_thread():
            self._reader.join(policy.WATCH_CANCEL_TIMEOUT)
            if self._reader.is_alive():
                log.warning("watch thread %s did not end when cancelled", self._reader.name)


def describe(exc: Exception) -> str:
    code = getattr(exc, "code", None)
    details = getattr(exc, "details", None)
    if callable(code) and callable(details):  # a grpc.RpcError from the stream
        return f"{code()}: {details()}"
    return repr(exc)
