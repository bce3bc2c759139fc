"""`vulcano.watch` on python-etcd3's client: the snapshot and the Watch stream over gRPC.

Loaded only for that client (the provisioning container's, the benchmarks'); the
agent's process, on `vulcano.etcdhttp`, never imports it.
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
from vulcano.watch import Change

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class _Response:
    canceled: bool
    compact_revision: int
    cancel_reason: str
    changes: list[Change]


class GrpcWatchStream:
    """One gRPC Watch call with a create request per prefix; ``close`` from any thread."""

    def __init__(self, client: Any, prefixes: list[str], start_revision: int) -> None:
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
        self._lock = threading.Lock()
        self._closed = False
        self._call: Any = None
        self._feeder: threading.Thread | None = None  # gRPC's thread reading _requests

    def _requests(self) -> Iterator[Any]:
        """The request side of the stream: the create requests, then open until closed."""
        self._feeder = threading.current_thread()
        yield from self._creates
        self._close_requests.get()

    def responses(self) -> Iterator[_Response]:
        with self._lock:
            if self._closed:
                return
            stub = etcdrpc.WatchStub(self._client.channel)
            self._call = stub.Watch(
                self._requests(),
                credentials=self._client.call_credentials,
                metadata=self._client.metadata,
            )
        for response in self._call:
            yield _Response(
                response.canceled,
                response.compact_revision,
                response.cancel_reason,
                [change_of(event) for event in response.events],
            )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._call is not None:
                self._call.cancel()
        self._close_requests.put(None)
        feeder = self._feeder
        if feeder is not None and feeder is not threading.current_thread():
            feeder.join(policy.WATCH_CANCEL_TIMEOUT)
            if feeder.is_alive():
                log.warning("watch thread %s did not end when cancelled", feeder.name)


def change_of(event: Any) -> Change:
    """A watch event as a Change."""
    kv = event.kv
    if event.type == etcdrpc.kv_pb2.Event.DELETE:
        return Change(kv.key.decode(), None, 0, kv.mod_revision)
    return Change(kv.key.decode(), kv.value, kv.lease, kv.mod_revision)
