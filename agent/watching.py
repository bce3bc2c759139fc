"""Snapshot-then-watch over etcd prefixes: the one way the engine and agents learn changes.

A reader takes one consistent snapshot (a transaction of range reads, so every prefix is
seen at the same revision), then watches every prefix from the next revision. Events go
to a queue; a broken watch puts a ``Resync`` marker, and the reader starts over.
"""

from __future__ import annotations

import contextlib
import queue
from dataclasses import dataclass
from typing import Any

import etcd3.watch
from etcd3 import etcdrpc, utils


class _SixValues:
    """python3-etcd3 0.13's watcher calls ``six.itervalues`` without importing six when
    its stream ends; without this the error never reaches the callbacks, and a reader
    would wait forever on a dead watch instead of resyncing."""

    @staticmethod
    def itervalues(d: dict[Any, Any]) -> Any:
        return iter(list(d.values()))


if not hasattr(etcd3.watch, "six"):
    etcd3.watch.six = _SixValues


@dataclass(frozen=True)
class Change:
    key: str
    value: bytes | None  # None: deleted
    lease: int
    revision: int


class Resync(Exception):
    """The watch broke (etcd restarted, compaction, network): take a new snapshot."""


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
    response = client.kvstub.Txn(
        request, client.timeout, credentials=client.call_credentials, metadata=client.metadata
    )
    out: list[list[Change]] = []
    for r in response.responses:
        out.append(
            [
                Change(kv.key.decode(), kv.value, kv.lease, kv.mod_revision)
                for kv in r.response_range.kvs
            ]
        )
    return int(response.header.revision), out


class PrefixWatch:
    """Watch prefixes from a revision, feeding Change lists (or Resync) into ``events``."""

    def __init__(self, client: Any, prefixes: list[str], start_revision: int) -> None:
        self.client = client
        self.events: queue.Queue[list[Change] | Resync] = queue.Queue()
        self._ids: list[Any] = []
        try:
            for p in prefixes:
                self._ids.append(
                    client.add_watch_prefix_callback(
                        p, self._callback, start_revision=start_revision
                    )
                )
        except Exception:
            self.cancel()
            raise

    def _callback(self, response: Any) -> None:
        if isinstance(response, BaseException):
            self.events.put(Resync(repr(response)))
            return
        changes = []
        for ev in response.events:
            deleted = type(ev).__name__ == "DeleteEvent"
            changes.append(
                Change(
                    ev.key.decode(),
                    None if deleted else ev.value,
                    0 if deleted else ev.lease,
                    ev.mod_revision,
                )
            )
        if changes:
            self.events.put(changes)

    def cancel(self) -> None:
        for wid in self._ids:
            with contextlib.suppress(Exception):  # the stream may already be gone
                self.client.cancel_watch(wid)
        self._ids = []
