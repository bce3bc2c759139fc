"""What the etcd v3 JSON gateway carries: requests and results as the agent's code reads
them (the same attributes python-etcd3 gives), encoded the gateway's way.

In the gateway's JSON, bytes are base64 and int64 are decimal strings; a field at its
zero value is left out (a failed transaction has no ``succeeded``, watch id 0 none).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any


def to_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def b64(value: str | bytes) -> str:
    return base64.b64encode(to_bytes(value)).decode("ascii")


def unb64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def prefix_range_end(prefix: bytes) -> bytes:
    """The end of the range of every key starting with ``prefix`` (etcd's convention)."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"  # every key from ``prefix`` on


@dataclass(frozen=True)
class Header:
    revision: int
    cluster_id: int = 0
    member_id: int = 0
    raft_term: int = 0

    @classmethod
    def of(cls, raw: dict[str, Any] | None) -> Header:
        raw = raw or {}
        return cls(
            int(raw.get("revision", 0)),
            int(raw.get("cluster_id", 0)),
            int(raw.get("member_id", 0)),
            int(raw.get("raft_term", 0)),
        )


@dataclass(frozen=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int

    @classmethod
    def of(cls, raw: dict[str, Any]) -> KeyValue:
        return cls(
            unb64(raw.get("key")),
            unb64(raw.get("value")),
            int(raw.get("create_revision", 0)),
            int(raw.get("mod_revision", 0)),
            int(raw.get("version", 0)),
            int(raw.get("lease", 0)),
        )


class KVMetadata:
    """A key's metadata, as python-etcd3's ``KVMetadata``."""

    def __init__(self, kv: KeyValue, header: Header) -> None:
        self.key = kv.key
        self.create_revision = kv.create_revision
        self.mod_revision = kv.mod_revision
        self.version = kv.version
        self.lease_id = kv.lease
        self.response_header = header


@dataclass(frozen=True)
class RangeResponse:
    header: Header
    kvs: list[KeyValue]
    count: int
    more: bool

    @classmethod
    def of(cls, raw: dict[str, Any]) -> RangeResponse:
        return cls(
            Header.of(raw.get("header")),
            [KeyValue.of(kv) for kv in raw.get("kvs", [])],
            int(raw.get("count", 0)),
            bool(raw.get("more", False)),
        )

    def pairs(self) -> list[tuple[bytes, KVMetadata]]:
        return [(kv.value, KVMetadata(kv, self.header)) for kv in self.kvs]


@dataclass(frozen=True)
class PutResponse:
    header: Header
    prev_kv: KeyValue | None = None


@dataclass(frozen=True)
class DeleteRangeResponse:
    header: Header
    deleted: int = 0
    prev_kvs: list[KeyValue] = field(default_factory=list)


def put_response(raw: dict[str, Any]) -> PutResponse:
    prev = raw.get("prev_kv")
    return PutResponse(Header.of(raw.get("header")), KeyValue.of(prev) if prev else None)


def delete_response(raw: dict[str, Any]) -> DeleteRangeResponse:
    return DeleteRangeResponse(
        Header.of(raw.get("header")),
        int(raw.get("deleted", 0)),
        [KeyValue.of(kv) for kv in raw.get("prev_kvs", [])],
    )


@dataclass(frozen=True)
class LeaseInfo:
    """A lease's time to live, as etcd's LeaseTimeToLiveResponse (-1: no such lease)."""

    ID: int
    TTL: int
    grantedTTL: int
    keys: list[bytes]


@dataclass(frozen=True)
class KeepAlive:
    """One lease refresh's answer (TTL 0: etcd no longer knows the lease)."""

    ID: int
    TTL: int


@dataclass(frozen=True)
class Status:
    """A member's status (maintenance status)."""

    version: str
    db_size: int
    leader: int
    raft_index: int
    raft_term: int
    member_id: int


# --- transactions: the comparisons and operations ------------------------------------

_RESULTS = {"==": "EQUAL", "!=": "NOT_EQUAL", "<": "LESS", ">": "GREATER"}


class Compare:
    """``t.mod(key) == 5``: one comparison of a transaction (python-etcd3's spelling)."""

    target = ""

    def __init__(self, key: str | bytes, range_end: str | bytes | None = None) -> None:
        self.key = key
        self.range_end = range_end
        self.result: str | None = None
        self.value: Any = None

    def _set(self, op: str, other: Any) -> Compare:
        self.result, self.value = _RESULTS[op], other
        return self

    def __eq__(self, other: object) -> Compare:  # type: ignore[override]
        return self._set("==", other)

    def __ne__(self, other: object) -> Compare:  # type: ignore[override]
        return self._set("!=", other)

    def __lt__(self, other: object) -> Compare:
        return self._set("<", other)

    def __gt__(self, other: object) -> Compare:
        return self._set(">", other)

    __hash__ = None  # type: ignore[assignment]

    def to_json(self) -> dict[str, Any]:
        if self.result is None:
            raise ValueError("a compare needs one of ==, !=, < or >")
        out: dict[str, Any] = {"key": b64(self.key), "target": self.target, "result": self.result}
        if self.range_end is not None:
            out["range_end"] = b64(self.range_end)
        out.update(self._operand())
        return out

    def _operand(self) -> dict[str, Any]:
        raise NotImplementedError


class Value(Compare):
    target = "VALUE"

    def _operand(self) -> dict[str, Any]:
        return {"value": b64(self.value)}


class Version(Compare):
    target = "VERSION"

    def _operand(self) -> dict[str, Any]:
        return {"version": str(int(self.value))}


class Create(Compare):
    target = "CREATE"

    def _operand(self) -> dict[str, Any]:
        return {"create_revision": str(int(self.value))}


class Mod(Compare):
    target = "MOD"

    def _operand(self) -> dict[str, Any]:
        return {"mod_revision": str(int(self.value))}


class Lease(Compare):
    """The id of the lease a key is on (etcd ≥ 3.3; 0: on none)."""

    target = "LEASE"

    def _operand(self) -> dict[str, Any]:
        return {"lease": str(int(self.value))}


def lease_id_of(lease: Any) -> int:
    """A lease object (``.id``) or a lease id, as the id."""
    return int(getattr(lease, "id", lease) or 0)


def put_request(
    key: str | bytes, value: str | bytes, lease: Any = None, prev_kv: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {"key": b64(key), "value": b64(value)}
    if lease:
        out["lease"] = str(lease_id_of(lease))
    if prev_kv:
        out["prev_kv"] = True
    return out


def range_request(
    key: str | bytes,
    range_end: str | bytes | None = None,
    *,
    keys_only: bool = False,
    count_only: bool = False,
    limit: int | None = None,
    revision: int | None = None,
    serializable: bool = False,
    sort_order: str | None = None,
    sort_target: str = "key",
) -> dict[str, Any]:
    out: dict[str, Any] = {"key": b64(key)}
    if range_end is not None:
        out["range_end"] = b64(range_end)
    if keys_only:
        out["keys_only"] = True
    if count_only:
        out["count_only"] = True
    if limit:
        out["limit"] = str(limit)
    if revision:
        out["revision"] = str(revision)
    if serializable:
        out["serializable"] = True
    if sort_order is not None:
        if sort_order not in ("ascend", "descend"):
            raise ValueError(f"unknown sort order: {sort_order!r}")
        out["sort_order"] = sort_order.upper()
        out["sort_target"] = {"create": "CREATE", "mod": "MOD"}.get(
            sort_target, sort_target.upper()
        )
    return out


def delete_request(
    key: str | bytes, range_end: str | bytes | None = None, prev_kv: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {"key": b64(key)}
    if range_end is not None:
        out["range_end"] = b64(range_end)
    if prev_kv:
        out["prev_kv"] = True
    return out


class Put:
    def __init__(
        self, key: str | bytes, value: str | bytes, lease: Any = None, prev_kv: bool = False
    ) -> None:
        self.request = {"request_put": put_request(key, value, lease, prev_kv)}


class Get:
    def __init__(self, key: str | bytes, range_end: str | bytes | None = None) -> None:
        self.request = {"request_range": range_request(key, range_end)}


class Delete:
    def __init__(
        self, key: str | bytes, range_end: str | bytes | None = None, prev_kv: bool = False
    ) -> None:
        self.request = {"request_delete_range": delete_request(key, range_end, prev_kv)}


class Transactions:
    """``client.transactions``: the comparisons and operations a transaction is made of."""

    value = Value
    version = Version
    create = Create
    mod = Mod
    lease = Lease
    put = Put
    get = Get
    delete = Delete


def txn_request(compare: list[Compare], success: list[Any], failure: list[Any]) -> dict[str, Any]:
    return {
        "compare": [c.to_json() for c in compare],
        "success": [op.request for op in success],
        "failure": [op.request for op in failure],
    }


def txn_responses(raw: dict[str, Any]) -> tuple[bool, list[Any]]:
    """(succeeded, one result per operation): a range's is a list of (value, meta)."""
    header = Header.of(raw.get("header"))
    out: list[Any] = []
    for response in raw.get("responses", []):
        if "response_range" in response:
            r = RangeResponse.of(response["response_range"])
            out.append([(kv.value, KVMetadata(kv, header)) for kv in r.kvs])
        elif "response_put" in response:
            out.append(put_response(response["response_put"]))
        elif "response_delete_range" in response:
            out.append(delete_response(response["response_delete_range"]))
        else:
            out.append(response)
    return bool(raw.get("succeeded", False)), out
