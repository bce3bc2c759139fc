"""A watch on an etcd key prefix, on our own gRPC stream.

python3-etcd3's shared Watcher thread dies on a stream error without telling its
callbacks (it fails with a NameError on its error path), so a lost watch would go
unnoticed. This one runs on the caller's thread and raises when the stream is lost, so
the caller can resync and watch again.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from etcd3 import etcdrpc
from etcd3.utils import prefix_range_end

from vulcano.errors import VulcanoError


class WatchLost(VulcanoError, ConnectionError):
    """The watch stream ended, was cancelled by etcd, or its revision was compacted."""


class PrefixWatch:
    """Watch every key under a prefix; `run` blocks, `cancel` (any thread) ends it."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._client = client
        self._prefix = prefix.encode()
        self._requests: queue.Queue[Any] = queue.Queue()
        self._call: Any = None
        self._cancelled = threading.Event()
        self._lock = threading.Lock()

    def _request_iter(self) -> Iterator[Any]:
        yield etcdrpc.WatchRequest(
            create_request=etcdrpc.WatchCreateRequest(
                key=self._prefix, range_end=prefix_range_end(self._prefix)
            )
        )
        # Keep the request side open until cancelled; None ends it.
        while self._requests.get() is not None:
            pass

    def run(self, on_created: Callable[[], None], on_events: Callable[[list[Any]], None]) -> None:
        """Call on_created once the watch exists, on_events for every batch; raises WatchLost."""
        with self._lock:
            if self._cancelled.is_set():
                return
            stub = etcdrpc.WatchStub(self._client.channel)
            self._call = stub.Watch(self._request_iter(), metadata=self._client.metadata)
        try:
            for response in self._call:
                if response.created:
                    on_created()
                if response.canceled or response.compact_revision:
                    raise WatchLost(
                        f"etcd ended the watch: {response.cancel_reason or 'compacted'}"
                    )
                if response.events:
                    on_events(list(response.events))
        except Exception as exc:
            if self._cancelled.is_set():
                return
            if isinstance(exc, WatchLost):
                raise
            raise WatchLost(f"watch stream lost: {exc}") from exc
        if not self._cancelled.is_set():
            raise WatchLost("watch stream ended")

    def cancel(self) -> None:
        with self._lock:
            self._cancelled.set()
            self._requests.put(None)
            if self._call is not None:
                self._call.cancel()
