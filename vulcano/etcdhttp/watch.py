"""etcd's Watch over the JSON gateway: one streamed HTTP response per watcher.

The request body carries one create request per prefix; etcd keeps the watches after
the body ends, and streams one JSON object a line (``{"result": WatchResponse}``). Over
HTTP/1.1 nothing more can be sent on it: ending the watch closes the connection.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import vulcano.etcdhttp.wire as wire
from vulcano.etcdhttp.transport import EtcdRequestError, answer, describe
from vulcano.watch import Change

# TCP keep-alive on a watch's connection: a member gone without a word (power, network)
# is noticed within about idle + interval * count seconds instead of never
_KEEPALIVE_IDLE, _KEEPALIVE_INTERVAL, _KEEPALIVE_COUNT = 5, 2, 3


@dataclass(frozen=True)
class WatchResponse:
    watch_id: int
    created: bool
    canceled: bool
    compact_revision: int
    cancel_reason: str
    changes: list[Change]

    @classmethod
    def of(cls, raw: dict[str, Any]) -> WatchResponse:
        events = []
        for e in raw.get("events", []):
            kv = wire.KeyValue.of(e.get("kv", {}))
            deleted = e.get("type") == "DELETE"
            events.append(
                Change(
                    kv.key.decode(),
                    None if deleted else kv.value,
                    0 if deleted else kv.lease,
                    kv.mod_revision,
                )
            )
        return cls(
            int(raw.get("watch_id", 0)),
            bool(raw.get("created", False)),
            bool(raw.get("canceled", False)),
            int(raw.get("compact_revision", 0)),
            str(raw.get("cancel_reason", "")),
            events,
        )


class WatchClosed(Exception):
    """The watch was closed before its stream was open."""


class WatchStream:
    """One Watch call on a member: ``responses()`` until it ends, ``close()`` from any thread."""

    def __init__(self, client: Any, prefixes: list[str], start_revision: int) -> None:
        self._client = client
        self._body = "".join(
            json.dumps(
                {
                    "create_request": {
                        "key": wire.b64(p),
                        "range_end": wire.b64(wire.prefix_range_end(wire.to_bytes(p))),
                        "start_revision": str(start_revision),
                    }
                }
            )
            for p in prefixes
        ).encode()
        self._lock = threading.Lock()
        self._closed = False
        self._conn: Any = None

    def _open(self) -> Any:
        """The streamed response, from the first member that answers."""
        client = self._client

        def once() -> Any:
            member = client.member()
            conn = member.open(client.timeout)
            with self._lock:
                if self._closed:  # not MemberUnreachable: carry_over must not try again
                    raise WatchClosed("watch cancelled")
                self._conn = conn
            try:
                conn.request("POST", "/v3/watch", self._body, {"Content-Type": "application/json"})
                response = conn.getresponse()
            except Exception as exc:
                conn.close()
                client._failed(member)
                raise describe(exc, member.url) from None
            if response.status != 200:
                raw = response.read()
                conn.close()
                answer(response.status, raw, member.url)
            sock = conn.sock
            sock.settimeout(None)  # a quiet prefix is not a dead member: keep-alive tells
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, _KEEPALIVE_IDLE)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, _KEEPALIVE_INTERVAL)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, _KEEPALIVE_COUNT)
            return response

        return client.carry_over(once)

    def responses(self) -> Iterator[WatchResponse]:
        """etcd's watch responses, in order; returns when the stream ends or is closed."""
        response = self._open()
        while True:
            line = response.readline()
            if not line:
                return
            if not line.strip():
                continue
            raw = json.loads(line)
            if "error" in raw:
                error = raw["error"]
                raise EtcdRequestError(
                    int(error.get("grpc_code", 2)), str(error.get("message")), 200
                )
            yield WatchResponse.of(raw.get("result", {}))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn = self._conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):  # wakes the reader blocked on the socket
                conn.sock.shutdown(socket.SHUT_RDWR)
            conn.close()
