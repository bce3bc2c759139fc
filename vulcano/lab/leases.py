"""Many machine leases kept alive over one etcd stream: for many machines in one process.

A node agent refreshes its one lease with a request of its own; a benchmark that runs
hundreds of machines in a process would spend its CPU opening a keep-alive stream (and
gRPC's thread for it) per refresh. ``LeaseKeeper`` sends every member's keep-alive on one
long-lived LeaseKeepAlive stream instead; etcd still receives (and counts) one message
per lease per refresh, and each member's deadline is confirmed from its own response.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

from etcd3 import etcdrpc

log = logging.getLogger(__name__)

REOPEN_DELAY = 0.5  # after the stream broke (etcd restarted or overloaded)


class KeptLease(Protocol):
    """What the keeper needs of a machine: its lease, and where to say it was kept."""

    def lease_id(self) -> int: ...
    def kept(self, sent: float, ttl: int) -> None:
        """etcd answered the keep-alive sent at monotonic ``sent`` with ``ttl`` (0: gone)."""


class LeaseKeeper:
    """Refreshes every added lease each ``every`` seconds, all on one stream."""

    def __init__(self, client: Any, every: float) -> None:
        self.client = client
        self.every = every
        self._members: dict[int, KeptLease] = {}
        self._sent: dict[int, float] = {}
        self._lock = threading.Lock()
        self.closed = threading.Event()
        self._outbox: queue.Queue[int | None] = queue.Queue()  # the live stream's
        self._wake = threading.Event()  # send every keep-alive now, not at the next round
        self._threads = [
            threading.Thread(target=self._send_loop, name="lease-keeper", daemon=True),
            threading.Thread(target=self._read_loop, name="lease-keeper-read", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def add(self, member: KeptLease) -> None:
        with self._lock:
            self._members[member.lease_id()] = member

    def remove(self, member: KeptLease) -> None:
        with self._lock:
            for lease, m in list(self._members.items()):
                if m is member:
                    del self._members[lease]

    def close(self) -> None:
        self.closed.set()
        self._wake.set()
        self._outbox.put(None)

    def _send_loop(self) -> None:
        while True:
            self._wake.wait(self.every)
            self._wake.clear()
            if self.closed.is_set():
                return
            with self._lock:
                leases = list(self._members)
                outbox = self._outbox
            now = time.monotonic()
            for lease in leases:
                self._sent[lease] = now
                outbox.put(lease)

    @staticmethod
    def _requests(outbox: queue.Queue[int | None]) -> Iterator[Any]:
        while (lease := outbox.get()) is not None:
            yield etcdrpc.LeaseKeepAliveRequest(ID=lease)

    def _read_loop(self) -> None:
        while not self.closed.is_set():
            with self._lock:
                outbox = self._outbox
            try:
                stub = etcdrpc.LeaseStub(self.client.channel)
                call = stub.LeaseKeepAlive(
                    self._requests(outbox),
                    credentials=self.client.call_credentials,
                    metadata=self.client.metadata,
                )
                for response in call:
                    with self._lock:
                        member = self._members.get(response.ID)
                    if member is not None:
                        member.kept(self._sent.get(response.ID, 0.0), int(response.TTL))
            except Exception as exc:
                if self.closed.is_set():
                    return
                log.warning("lease keeper: keep-alive stream lost (%s); reopening", exc)
            outbox.put(None)  # ends that stream's request side
            with self._lock:
                self._outbox = queue.Queue()
            self.closed.wait(REOPEN_DELAY)
            self._wake.set()  # what was in flight is lost: every lease again, at once
