"""Connecting to the cluster's etcd: endpoint parsing, the errors every client raises, lease
refreshes, and the one way of waiting etcd out while it is unreachable.

Two clients give the same calls: python-etcd3's over gRPC (`connect`, `vulcano.etcdgrpc`)
for the provisioning container, and `vulcano.etcdhttp` over etcd's JSON gateway for the
agent's process, which must not load gRPC (its memory). Nothing here imports either."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from vulcano import policy
from vulcano.errors import VulcanoError
from vulcano.etcdtls import TLS_FLAGS, check_files
from vulcano.etcdtls import TLSFileError as TLSFileError  # every client's TLS, here too
from vulcano.etcdtls import TLSFiles as TLSFiles

T = TypeVar("T")


class EndpointError(VulcanoError, ValueError):
    """An --etcd-endpoints value we cannot use; says which part."""


class EtcdUnavailable(VulcanoError, ConnectionError):
    """etcd did not answer in time; says what we were doing and the last error."""


class EtcdRefused(EtcdUnavailable):
    """Every etcd member refused this client's TLS connection (certificate or CA)."""


def parse_urls(value: str) -> list[tuple[str, str, int]]:
    """Parse "https://10.0.0.1:2379,..." into (scheme, host, port); no scheme means http."""
    endpoints = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        if "//" not in item:
            item = "http://" + item
        try:
            parts = urlsplit(item)
        except ValueError:  # 'http://[x]': brackets around no IPv6 address
            raise EndpointError(f"etcd endpoint {raw!r}: not a URL") from None
        if parts.scheme not in {"http", "https"}:
            raise EndpointError(f"etcd endpoint {raw!r}: scheme must be http or https")
        try:
            port = parts.port or 2379
        except ValueError:
            raise EndpointError(f"etcd endpoint {raw!r}: port is not a number") from None
        if not parts.hostname:
            raise EndpointError(f"etcd endpoint {raw!r}: no host")
        if parts.path not in {"", "/"}:
            raise EndpointError(f"etcd endpoint {raw!r}: must not have a path")
        endpoints.append((parts.scheme, parts.hostname, port))
    if not endpoints:
        raise EndpointError("no etcd endpoint given")
    schemes = {scheme for scheme, _, _ in endpoints}
    if len(schemes) > 1:
        raise EndpointError(
            f"etcd endpoints {value!r} mix http:// and https://: every member is reached "
            "the same way"
        )
    return endpoints


def parse_endpoints(value: str) -> list[tuple[str, int]]:
    """Parse "http://10.0.0.1:2379,http://10.0.0.2:2379" into (host, port) pairs."""
    return [(host, port) for _, host, port in parse_urls(value)]


def endpoint_scheme(value: str) -> str:
    """ "http" or "https": how every endpoint of ``value`` is reached."""
    return parse_urls(value)[0][0]


def client_urls(
    endpoints: str, tls: TLSFiles | None, server_names: list[str] | None
) -> list[tuple[str, str, int]]:
    """The endpoints a client is made for, checked against its TLS files (either client's
    `connect`): https:// needs them, http:// refuses them, one server name per endpoint."""
    urls = parse_urls(endpoints)
    secure = urls[0][0] == "https"
    if secure and tls is None:
        raise TLSFileError(
            "https:// etcd endpoints need --cacert: the CA that signed etcd's server certificates"
        )
    if not secure and tls is not None:
        raise TLSFileError("--cacert given but the etcd endpoints are http://: use https:// URLs")
    if server_names is not None and len(server_names) != len(urls):
        raise ValueError("one server name per endpoint")
    return urls


def tls_files(
    endpoints: str,
    cacert: str | Path | None,
    cert: str | Path | None,
    key: str | Path | None,
    labels: tuple[str, str, str] = TLS_FLAGS,
) -> TLSFiles | None:
    """The TLS files for ``endpoints``, read and checked now (`etcdtls.check_files`)."""
    return check_files(endpoint_scheme(endpoints), cacert, cert, key, labels)


def connect(
    endpoints: str,
    timeout: float = policy.ETCD_REQUEST_TIMEOUT,
    *,
    tls: TLSFiles | None = None,
    server_names: list[str] | None = None,
) -> Any:
    """An etcd3 (gRPC) client for the given endpoints, failing over between them
    (`vulcano.etcdgrpc`); the agent's process uses `vulcano.etcdhttp.connect` instead."""
    from vulcano import etcdgrpc

    return etcdgrpc.connect(endpoints, timeout, tls=tls, server_names=server_names)


def client_error_message(exc: BaseException) -> str | None:
    """How an error of an etcd client reads for an operator ("etcd: …"); None if it is not one."""
    from vulcano.etcdhttp.transport import EtcdRequestError

    if isinstance(exc, EtcdUnavailable | TLSFileError | EtcdRequestError):
        return str(exc)
    if "etcd3" not in sys.modules:  # no gRPC client in this process: none of its errors
        return None
    import etcd3.exceptions
    import grpc  # type: ignore[import-untyped]

    if isinstance(exc, etcd3.exceptions.Etcd3Exception):
        return f"etcd: {type(exc).__name__}: {exc}"
    if isinstance(exc, grpc.RpcError):
        details = exc.details() if hasattr(exc, "details") else str(exc)
        return f"etcd: {details}"
    return None


def refresh_lease(client: Any, lease_id: int) -> int:
    """Refresh a lease once; its new TTL, or 0 when etcd no longer knows it."""
    for response in client.refresh_lease(lease_id):
        return int(response.TTL)
    return 0


def is_unreachable(exc: BaseException) -> bool:
    """Errors that mean "etcd is unreachable or slow": waited out with backoff, never fatal."""
    from vulcano.etcdhttp.transport import EtcdRequestError

    module = type(exc).__module__
    return module.startswith(("etcd3", "grpc")) or isinstance(
        exc, TimeoutError | ConnectionError | EtcdRequestError
    )


def retry_while_unreachable(
    call: Callable[[], T],
    what: str,
    *,
    stop: threading.Event | None = None,
    deadline: float | None = None,
    backoff: policy.Backoff = policy.ETCD_RECONNECT,
    log: Callable[..., None] | None = None,
) -> T | None:
    """``call()`` until it succeeds; while etcd is unreachable, wait and try again.

    Every other error propagates at once. Returns None if ``stop`` is set first; raises
    EtcdUnavailable once the monotonic ``deadline`` passes. ``log`` (a logger's warning)
    hears of every failed attempt.
    """
    delays = backoff.delays()
    started = time.monotonic()
    last: BaseException | None = None
    while stop is None or not stop.is_set():
        try:
            return call()
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            last = exc
            if log is not None:
                log("%s: etcd unreachable, retrying: %s", what, exc)
        delay = next(delays)
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                waited = time.monotonic() - started
                raise EtcdUnavailable(
                    f"{what}: etcd did not answer within {waited:.0f}s ({last!r})"
                )
            delay = min(delay, left)
        if stop is not None:
            stop.wait(delay)
        else:
            time.sleep(delay)
    return None


def lease_compare(client: Any, key: str) -> Any:
    """A transaction's compare of the lease ``key`` is on (``== lease_id``), on any client."""
    made = getattr(client.transactions, "lease", None)
    if made is not None:
        return made(key)
    from vulcano.etcdgrpc import LeaseCompare  # python-etcd3 has none of its own

    return LeaseCompare(key)


def __getattr__(name: str) -> Any:
    """The gRPC client's names, from `vulcano.etcdgrpc` (loaded only when asked for)."""
    if name in ("FailoverClient", "LeaseCompare"):
        from vulcano import etcdgrpc

        return getattr(etcdgrpc, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
