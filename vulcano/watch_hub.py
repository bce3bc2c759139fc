"""Many prefix watches on one gRPC Watch stream: for many watchers sharing one client.

Every ``PrefixWatch`` (vulcano/watch.py) owns a Watch stream, and a thread blocked on it
that gRPC wakes ten times a second; one machine's agent has a few, which is nothing.
A process that plays hundreds of machines on one client (the scale benchmarks) would
spend most of its CPU on those wake-ups. A ``WatchHub`` attached to the client
(``attach``) carries every watch opened through ``open_watch`` on one stream instead,
with etcd's watch ids telling the events apart, and one reader thread.

A hub watch behaves as a ``PrefixWatch``: Change lists in ``events``, and a last
``Resync`` when the stream is lost, when etcd cancels any of its watches (compaction),
or when ``cancel`` ends it. Without a hub on the client, ``open_watch`` is PrefixWatch.
A hub is for python-etcd3's client (gRPC, loaded when a hub is made); the agent's
process, on `vulcano.etcdhttp`, has none.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any, Protocol

from vulcano.watch import Change, PrefixWatch, Resync

log = logging.getLogger(__name__)


class Watch(Protocol):
    """What a watcher reads: Change lists, then one Resync; ``cancel`` ends it."""

    events: queue.Queue[list[Change] | Resync]

    def cancel(self) -> None: ...


def attach(client: Any) -> WatchHub:
    """Carry every later ``open_watch`` on ``client`` over one shared stream."""
    hub = WatchHub(client)
    client.watch_hub = hub
    return hub


def open_watch(client: Any, prefixes: list[str], start_revision: int) -> Watch:
    """Watch prefixes from a revision: on the client's hub if it has one."""
    hub = getattr(client, "watch_hub", None)
    if isinstance(hub, WatchHub):
        return hub.watch(prefixes, start_revision)
    return PrefixWatch(client, prefixes, start_revision)


class HubWatch:
    """One watcher's watches (one per prefix) on a hub's stream."""

    def __init__(self, hub: WatchHub) -> None:
        self.hub = hub
        self.events: queue.Queue[list[Change] | Resync] = queue.Queue()
        self.ids: list[int] = []
        self.ended = False  # guarded by the hub's lock

    def cancel(self) -> None:
        self.hub.drop(self, "watch cancelled")


class WatchHub:
    """The shared stream: creates answered in order, events routed by watch id."""

    def __init__(self, client: Any) -> None:
        from etcd3 import etcdrpc, utils

        from vulcano.watch_grpc import change_of

        self._rpc, self._utils, self._change_of = etcdrpc, utils, change_of
        self.client = client
        self._lock = threading.Lock()
        self._requests: queue.Queue[Any] | None = None  # the live stream's, None: no stream
        self._pending: deque[HubWatch] = deque()  # one entry per create not yet answered
        self._by_id: dict[int, HubWatch] = {}

    def watch(self, prefixes: list[str], start_revision: int) -> HubWatch:
        w = HubWatch(self)
        with self._lock:
            if self._requests is None:
                self._requests = queue.Queue()
                reader = threading.Thread(
                    target=self._read, args=(self._requests,), name="etcd-watch-hub", daemon=True
                )
                reader.start()
            etcdrpc, utils = self._rpc, self._utils
            for p in prefixes:
                key = utils.to_bytes(p)
                self._pending.append(w)
                self._requests.put(
                    etcdrpc.WatchRequest(
                        create_request=etcdrpc.WatchCreateRequest(
                            key=key,
                            range_end=utils.prefix_range_end(key),
                            start_revision=start_revision,
                        )
                    )
                )
        return w

    def drop(self, w: HubWatch, reason: str) -> None:
        """End ``w``: cancel its watches in etcd, and tell its reader to resync."""
        with self._lock:
            if w.ended:
                return
            w.ended = True
            for watch_id in w.ids:
                self._by_id.pop(watch_id, None)
                if self._requests is not None:
                    self._requests.put(
                        self._rpc.WatchRequest(
                            cancel_request=self._rpc.WatchCancelRequest(watch_id=watch_id)
                        )
                    )
        w.events.put(Resync(reason))

    @staticmethod
    def _feed(requests: queue.Queue[Any]) -> Iterator[Any]:
        while (request := requests.get()) is not None:
            yield request

    def _read(self, requests: queue.Queue[Any]) -> None:
        reason = "watch stream ended"
        try:
            stub = self._rpc.WatchStub(self.client.channel)
            call = stub.Watch(
                self._feed(requests),
                credentials=self.client.call_credentials,
                metadata=self.client.metadata,
            )
            for response in call:
                self._route(response)
        except Exception as exc:
            reason = f"watch stream lost: {exc}"
            log.warning("watch hub: %s", reason)
        finally:
            with self._lock:
                if self._requests is requests:
                    self._requests = None
                victims = {*self._by_id.values(), *self._pending}
                self._by_id.clear()
                self._pending.clear()
            requests.put(None)
            for w in victims:
                self.drop(w, reason)

    def _route(self, response: Any) -> None:
        w: HubWatch | None
        with self._lock:
            if response.created:
                w = self._pending.popleft()
                if not response.canceled:
                    w.ids.append(response.watch_id)
                    if not w.ended:
                        self._by_id[response.watch_id] = w
                    elif self._requests is not None:  # cancelled before etcd answered
                        self._requests.put(
                            self._rpc.WatchRequest(
                                cancel_request=self._rpc.WatchCancelRequest(
                                    watch_id=response.watch_id
                                )
                            )
                        )
                    return
            else:
                w = self._by_id.get(response.watch_id)
                if w is None:
                    return  # a watch already cancelled
        if response.canceled or response.compact_revision:
            why = response.cancel_reason or f"revision compacted (to {response.compact_revision})"
            self.drop(w, "etcd ended the watch: " + why)
            return
        changes = [self._change_of(event) for event in response.events]
        if changes and not w.ended:
            w.events.put(changes)
