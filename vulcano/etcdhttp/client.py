"""The etcd v3 client over etcd's JSON gateway, failing over between members.

The same calls and results as python-etcd3's client through `vulcano.etcd.connect` (get,
get_prefix, put, delete, transaction, leases, status), so the shared code runs on either.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import vulcano.etcdhttp.wire as wire
from vulcano import policy
from vulcano.etcdhttp.transport import EtcdRequestError, Member, MemberUnreachable, tls_context
from vulcano.etcdtls import TLSFileError, TLSFiles, plain_hint, refusal_reason, tls_refusal

T = TypeVar("T")


class Lease:
    """A lease, as python-etcd3's: its ``id``, and calls on it through its client."""

    def __init__(self, lease_id: int, ttl: int, client: HttpClient) -> None:
        self.id = lease_id
        self.ttl = ttl
        self.etcd_client = client

    def revoke(self) -> None:
        self.etcd_client.revoke_lease(self.id)

    def refresh(self) -> list[wire.KeepAlive]:
        return list(self.etcd_client.refresh_lease(self.id))

    @property
    def remaining_ttl(self) -> int:
        return self.etcd_client.get_lease_info(self.id).TTL

    @property
    def granted_ttl(self) -> int:
        return self.etcd_client.get_lease_info(self.id).grantedTTL


class HttpClient:
    """etcd over its JSON gateway, each request carried over to the next member.

    A request that finds its member out of reach (or the cluster between leaders) is
    tried on the others, and again, for `policy.ETCD_FAILOVER_SECONDS`; then it raises
    `EtcdUnavailable` naming every endpoint. A member that failed is skipped for
    `policy.ETCD_ENDPOINT_RETRY` while another has not. When every member in turn refuses
    this client's TLS it raises `EtcdRefused` at once, saying why. A timed-out
    transaction may have landed: it is not sent again.
    """

    transactions = wire.Transactions()

    def __init__(
        self,
        members: list[Member],
        tls: TLSFiles | None,
        timeout: float = policy.ETCD_REQUEST_TIMEOUT,
    ) -> None:
        self.members = members
        self.urls = [m.url for m in members]
        self.tls = tls
        self.timeout = timeout
        self._current = 0
        self._lock = threading.Lock()
        if tls is not None:
            context = tls_context(tls)
            for member in members:
                member.use_tls(context)

    # --- connections ---------------------------------------------------------------

    def reload_tls(self, tls: TLSFiles) -> None:
        """Use ``tls``'s files (read now) for every connection from here on.

        Idle connections are closed; a request or watch in flight finishes on its own
        (TLS is checked only when a connection is made), and a watch that etcd ends
        resyncs on a new connection.
        """
        if self.tls is None:
            raise TLSFileError("this etcd client is not on TLS: nothing to reload")
        context = tls_context(tls)
        for member in self.members:
            member.use_tls(context)
        self.tls = tls

    def close(self) -> None:
        for member in self.members:
            member.close()

    def member(self) -> Member:
        """The member to ask now: the current one, unless it failed recently."""
        now = time.monotonic()
        with self._lock:
            for step in range(len(self.members)):
                i = (self._current + step) % len(self.members)
                m = self.members[i]
                if len(self.members) == 1 or now - m.last_failed >= policy.ETCD_ENDPOINT_RETRY:
                    self._current = i
                    return m
            # every one failed recently: the one that failed longest ago
            i = min(range(len(self.members)), key=lambda j: self.members[j].last_failed)
            self._current = i
            return self.members[i]

    def _failed(self, member: Member) -> None:
        with self._lock:
            member.last_failed = time.monotonic()

    def request(self, path: str, body: dict[str, Any], after_timeout: bool = True) -> Any:
        """POST to the gateway, carried over to the other members while they fail."""

        def once() -> dict[str, Any]:
            member = self.member()
            try:
                return member.request(path, body, self.timeout)
            except MemberUnreachable as exc:
                self._failed(member)
                raise exc from None

        return self.carry_over(once, after_timeout)

    def carry_over(self, call: Callable[[], T], after_timeout: bool = True) -> T:
        """``call()``, tried on the members in turn while they are down or between leaders."""
        from vulcano.etcd import EtcdRefused, EtcdUnavailable

        deadline = time.monotonic() + policy.ETCD_FAILOVER_SECONDS
        delays = policy.ETCD_FAILOVER.delays()
        tries = refusals = 0  # refusals: tries in a row that failed in the TLS handshake
        last: MemberUnreachable | None = None
        while True:
            tries += 1
            try:
                return call()
            except MemberUnreachable as exc:
                if exc.timeout and not after_timeout:
                    raise EtcdUnavailable(
                        f"etcd: no answer in {self.timeout:.0f}s from {exc.details} "
                        "(not sent again: it may have been applied)"
                    ) from None
                last = exc
                refusals = refusals + 1 if exc.tls and tls_refusal(exc.details) else 0
            if refusals >= len(self.members):
                raise EtcdRefused(
                    f"etcd: the TLS connection to {', '.join(self.urls)} was refused: "
                    f"{refusal_reason(last.details, self.tls)} (TLS: {last.details})"
                )
            if tries >= len(self.members) and time.monotonic() >= deadline:
                break
            if tries >= len(self.members):
                time.sleep(min(next(delays), max(0.0, deadline - time.monotonic())))
        raise EtcdUnavailable(
            f"etcd: no member answered at {', '.join(self.urls)} "
            f"({tries} tries in {policy.ETCD_FAILOVER_SECONDS:.0f}s; last: {last})"
            f"{plain_hint(str(last)) if self.tls is None else ''}"
        )

    # --- keys ----------------------------------------------------------------------

    def get_response(self, key: str | bytes, **kwargs: Any) -> wire.RangeResponse:
        return wire.RangeResponse.of(
            self.request("/v3/kv/range", wire.range_request(key, **kwargs))
        )

    def get(self, key: str | bytes, **kwargs: Any) -> tuple[bytes | None, Any]:
        """(value, metadata) of ``key``; (None, None) when it is absent."""
        pairs = self.get_response(key, **kwargs).pairs()
        return pairs[0] if pairs else (None, None)

    def get_prefix_response(self, prefix: str | bytes, **kwargs: Any) -> wire.RangeResponse:
        end = wire.prefix_range_end(wire.to_bytes(prefix))
        return self.get_range_response(prefix, end, **kwargs)

    def get_prefix(self, prefix: str | bytes, **kwargs: Any) -> Iterator[tuple[bytes, Any]]:
        """(value, metadata) of every key under ``prefix``, by key; ``keys_only``: values b""."""
        return iter(self.get_prefix_response(prefix, **kwargs).pairs())

    def get_range_response(
        self, start: str | bytes, end: str | bytes, **kwargs: Any
    ) -> wire.RangeResponse:
        return wire.RangeResponse.of(
            self.request("/v3/kv/range", wire.range_request(start, end, **kwargs))
        )

    def get_range(
        self, start: str | bytes, end: str | bytes, **kwargs: Any
    ) -> Iterator[tuple[bytes, Any]]:
        return iter(self.get_range_response(start, end, **kwargs).pairs())

    def get_all(self, **kwargs: Any) -> Iterator[tuple[bytes, Any]]:
        return self.get_range(b"\0", b"\0", **kwargs)

    def count_prefix(self, prefix: str | bytes) -> int:
        """How many keys are under ``prefix`` (read without their values)."""
        return self.get_prefix_response(prefix, count_only=True).count

    def put(
        self, key: str | bytes, value: str | bytes, lease: Any = None, prev_kv: bool = False
    ) -> wire.PutResponse:
        return wire.put_response(
            self.request("/v3/kv/put", wire.put_request(key, value, lease, prev_kv))
        )

    def delete(self, key: str | bytes, prev_kv: bool = False, return_response: bool = False) -> Any:
        """Delete ``key``: whether it was there (or the whole response)."""
        response = wire.delete_response(
            self.request("/v3/kv/deleterange", wire.delete_request(key, None, prev_kv))
        )
        return response if return_response else response.deleted >= 1

    def delete_prefix(self, prefix: str | bytes) -> wire.DeleteRangeResponse:
        end = wire.prefix_range_end(wire.to_bytes(prefix))
        return wire.delete_response(
            self.request("/v3/kv/deleterange", wire.delete_request(prefix, end))
        )

    def transaction(
        self,
        compare: list[wire.Compare],
        success: list[Any] | None = None,
        failure: list[Any] | None = None,
    ) -> tuple[bool, list[Any]]:
        """(succeeded, results); not sent again after a timeout (it may have landed)."""
        body = wire.txn_request(compare, success or [], failure or [])
        return wire.txn_responses(self.request("/v3/kv/txn", body, after_timeout=False))

    def put_if_not_exists(self, key: str | bytes, value: str | bytes, lease: Any = None) -> bool:
        t = self.transactions
        ok, _ = self.transaction([t.create(key) == 0], [t.put(key, value, lease=lease)], [])
        return ok

    def replace(self, key: str | bytes, initial: str | bytes, new: str | bytes) -> bool:
        t = self.transactions
        ok, _ = self.transaction([t.value(key) == initial], [t.put(key, new)], [])
        return ok

    def compact(self, revision: int, physical: bool = False) -> None:
        body: dict[str, Any] = {"revision": str(revision), "physical": physical}
        self.request("/v3/kv/compaction", body)

    # --- leases --------------------------------------------------------------------

    def lease(self, ttl: int, lease_id: int | None = None) -> Lease:
        body = {"TTL": str(ttl), "ID": str(lease_id or 0)}
        raw = self.request("/v3/lease/grant", body)
        return Lease(int(raw["ID"]), int(raw.get("TTL", ttl)), self)

    def revoke_lease(self, lease_id: int) -> None:
        self.request("/v3/lease/revoke", {"ID": str(lease_id)})

    def refresh_lease(self, lease_id: int) -> Iterator[wire.KeepAlive]:
        """One keep-alive of the lease: its new TTL (0: etcd no longer knows it)."""
        raw = self.request("/v3/lease/keepalive", {"ID": str(lease_id)})
        if "error" in raw:  # a streamed call's error comes in the body
            error = raw["error"]
            raise EtcdRequestError(int(error.get("grpc_code", 2)), str(error.get("message")), 200)
        result = raw.get("result", raw)
        return iter([wire.KeepAlive(int(result.get("ID", lease_id)), int(result.get("TTL", 0)))])

    def get_lease_info(self, lease_id: int) -> wire.LeaseInfo:
        raw = self.request("/v3/lease/timetolive", {"ID": str(lease_id), "keys": True})
        return wire.LeaseInfo(
            int(raw.get("ID", lease_id)),
            int(raw.get("TTL", 0)),
            int(raw.get("grantedTTL", 0)),
            [wire.unb64(k) for k in raw.get("keys", [])],
        )

    # --- the cluster ---------------------------------------------------------------

    def status(self) -> wire.Status:
        raw = self.request("/v3/maintenance/status", {})
        header = raw.get("header", {})
        return wire.Status(
            str(raw.get("version", "")),
            int(raw.get("dbSize", 0)),
            int(raw.get("leader", 0)),
            int(raw.get("raftIndex", 0)),
            int(raw.get("raftTerm", 0)),
            int(header.get("member_id", 0)),
        )

    def snapshot_ranges(self, prefixes: list[str]) -> tuple[int, list[list[wire.KeyValue]]]:
        """Every key under each prefix, all at one revision (one transaction)."""
        t = self.transactions
        ops = [t.get(p, wire.prefix_range_end(wire.to_bytes(p))) for p in prefixes]
        raw = self.request("/v3/kv/txn", wire.txn_request([], ops, []))
        revision = wire.Header.of(raw.get("header")).revision
        out = [
            wire.RangeResponse.of(r.get("response_range", {})).kvs for r in raw.get("responses", [])
        ]
        return revision, out
