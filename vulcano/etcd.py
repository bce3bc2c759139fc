"""Connecting to the cluster's etcd: endpoint parsing, the one client constructor, lease
refreshes, and the one way of waiting etcd out while it is unreachable."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import etcd3

from vulcano import policy
from vulcano.errors import VulcanoError

T = TypeVar("T")


class EndpointError(VulcanoError, ValueError):
    """An --etcd-endpoints value we cannot use; says which part."""


class EtcdUnavailable(VulcanoError, ConnectionError):
    """etcd did not answer in time; says what we were doing and the last error."""


def parse_endpoints(value: str) -> list[tuple[str, int]]:
    """Parse "http://10.0.0.1:2379,http://10.0.0.2:2379" into (host, port) pairs."""
    endpoints = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        if "//" not in item:
            item = "http://" + item
        parts = urlsplit(item)
        if parts.scheme not in {"http", "https"}:
            raise EndpointError(f"etcd endpoint {raw!r}: scheme must be http or https")
        if parts.scheme == "https":
            raise EndpointError(f"etcd endpoint {raw!r}: TLS endpoints are not supported yet")
        try:
            port = parts.port or 2379
        except ValueError:
            raise EndpointError(f"etcd endpoint {raw!r}: port is not a number") from None
        if not parts.hostname:
            raise EndpointError(f"etcd endpoint {raw!r}: no host")
        if parts.path not in {"", "/"}:
            raise EndpointError(f"etcd endpoint {raw!r}: must not have a path")
        endpoints.append((parts.hostname, port))
    if not endpoints:
        raise EndpointError("no etcd endpoint given")
    return endpoints


def connect(endpoints: str, timeout: float = policy.ETCD_REQUEST_TIMEOUT) -> Any:
    """An etcd3 client for the given endpoints, failing over between them."""
    pairs = parse_endpoints(endpoints)
    # etcd3.client() would skip its only endpoint for 300 s after one failed request;
    # with nothing to fail over to, a lone endpoint is always worth trying again.
    retry = policy.ETCD_ENDPOINT_RETRY if len(pairs) > 1 else 0.0
    options = [
        ("grpc.initial_reconnect_backoff_ms", int(policy.ETCD_GRPC_RECONNECT_INITIAL * 1000)),
        ("grpc.min_reconnect_backoff_ms", int(policy.ETCD_GRPC_RECONNECT_INITIAL * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(policy.ETCD_GRPC_RECONNECT_MAX * 1000)),
    ]
    return etcd3.MultiEndpointEtcd3Client(
        endpoints=[
            etcd3.Endpoint(host, port, secure=False, time_retry=retry, opts=options)
            for host, port in pairs
        ],
        timeout=timeout,
        failover=True,
    )


def client_error_message(exc: BaseException) -> str | None:
    """How an error of etcd's client reads for an operator ("etcd: …"); None if it is not one."""
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
    module = type(exc).__module__
    return module.startswith(("etcd3", "grpc")) or isinstance(exc, TimeoutError | ConnectionError)


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
