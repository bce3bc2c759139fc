"""The gRPC client of etcd (python-etcd3), failing over between members: what the
provisioning container speaks (`vulcano.etcd.connect`). The agent's process uses
`vulcano.etcdhttp` and never imports this module (gRPC's memory)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

# gRPC's C core writes its own log lines to stderr, bypassing `logging` (a refused TLS
# handshake prints three); what they say reaches the user in our errors (`grpc_details`).
# Read when grpc loads, so set before; GRPC_VERBOSITY=debug still turns them on.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import etcd3
import etcd3.exceptions
import grpc  # type: ignore[import-untyped]
from etcd3 import etcdrpc, transactions

from vulcano import policy
from vulcano.etcd import EtcdRefused, EtcdUnavailable, client_urls
from vulcano.etcdtls import TLSFileError, TLSFiles, grpc_details, plain_hint, refusal_reason
from vulcano.etcdtls import tls_refusal as _tls_refusal

T = TypeVar("T")


# The client's calls that are tried on the next member when one fails. Those also tried
# after a timeout leave the same state however often they land; a timed-out transaction
# (or put-if-absent, replace) may have landed, so it is not sent twice.
_FAILOVER_CALLS = {
    "get": True,
    "get_response": True,
    "get_prefix": True,
    "get_prefix_response": True,
    "get_range_response": True,
    "get_all_response": True,
    "get_lease_info": True,
    "status": True,
    "put": True,
    "delete": True,
    "delete_prefix": True,
    "lease": True,
    "revoke_lease": True,
    "transaction": False,
    "put_if_not_exists": False,
    "replace": False,
}
# Generator calls, consumed whole inside the failover (so their errors are caught there).
_FAILOVER_GENERATORS = {"get_all": True, "get_range": True, "refresh_lease": True}


class FailoverClient(etcd3.MultiEndpointEtcd3Client):  # type: ignore[misc]
    """etcd's multi-endpoint client that carries a request over to the next member.

    The base client marks a member failed when a request to it fails, and leaves the
    retry to its caller; one dead member of three then fails a third of every program's
    first requests. Here each request is tried again on the other members, and again as
    the cluster elects a leader, for `policy.ETCD_FAILOVER_SECONDS`; then it raises
    `EtcdUnavailable` naming every endpoint. When every member has failed recently, the
    one that failed longest ago is tried instead of giving up. When every member in turn
    refuses this client's TLS, waiting cannot help: it raises `EtcdRefused` at once,
    saying why (`etcdtls.refusal_reason`).
    """

    def __init__(
        self,
        urls: list[str],
        tls: TLSFiles | None = None,
        channel_options: list[list[tuple[str, int | str]]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.urls = urls
        self.tls = tls  # what a TLS refusal is explained with
        self._channel_options = channel_options or [[] for _ in self.endpoints]
        self._retired: list[Any] = []  # channels replaced by reload_tls, closed with us
        self.transactions.lease = LeaseCompare  # as the HTTP client's, beside etcd3's own

    def reload_tls(self, tls: TLSFiles) -> None:
        """Use ``tls``'s files (read now) for every connection from here on.

        Each endpoint gets a new channel with the new credentials; the old channels are
        left open (a stream or call on them finishes; TLS is checked only when a
        connection is made) and closed with the client. Our watches (`vulcano.watch`)
        break with their old channel's stream only when etcd ends it, and resync on
        the new one.
        """
        if self.tls is None:
            raise TLSFileError("this etcd client is not on TLS: nothing to reload")
        credentials = _credentials(tls)
        for endpoint, options in zip(self.endpoints.values(), self._channel_options, strict=True):
            self._retired.append(endpoint.channel)
            endpoint.credentials = credentials
            endpoint.channel = endpoint._mkchannel(options)
        self.tls = tls
        # stubs are bound to a channel: made again on the new one at their next use
        stubs: dict[str, Any] = self.__dict__["_stubs"]
        for name in [k for k in stubs if k != "watcher"]:
            del stubs[name]

    def close(self) -> None:
        super().close()
        for channel in self._retired:
            channel.close()
        self._retired = []

    @property
    def channel(self) -> Any:
        try:
            return super().channel
        except etcd3.exceptions.NoServerAvailableError:
            label = min(self.endpoints, key=lambda name: self.endpoints[name].last_failed)
            self.endpoints[label].last_failed = 0
            self._current_endpoint_label = label
            return self.endpoints[label].use()

    def carry_over(self, call: Callable[[], T], after_timeout: bool = True) -> T:
        """``call()``, tried on the members in turn while they are down or between leaders."""
        retried: tuple[type[BaseException], ...] = (
            etcd3.exceptions.ConnectionFailedError,
            etcd3.exceptions.NoServerAvailableError,
        )
        if after_timeout:
            retried = (*retried, etcd3.exceptions.ConnectionTimeoutError)
        deadline = time.monotonic() + policy.ETCD_FAILOVER_SECONDS
        delays = policy.ETCD_FAILOVER.delays()
        tries = 0
        last: BaseException | None = None
        refusals = 0  # tries in a row that failed in the TLS handshake
        while True:
            tries += 1
            try:
                return call()
            except retried as exc:
                last = exc
                refusals = refusals + 1 if _tls_refusal(grpc_details(exc)) else 0
            if refusals >= len(self.endpoints):
                # every member refused this client's TLS: waiting does not change that
                raise EtcdRefused(
                    f"etcd: the TLS connection to {', '.join(self.urls)} was refused: "
                    f"{refusal_reason(grpc_details(last), self.tls)} (gRPC: {grpc_details(last)})"
                )
            if tries >= len(self.endpoints) and time.monotonic() >= deadline:
                break
            if tries >= len(self.endpoints):
                time.sleep(min(next(delays), max(0.0, deadline - time.monotonic())))
        raise EtcdUnavailable(
            f"etcd: no member answered at {', '.join(self.urls)} "
            f"({tries} tries in {policy.ETCD_FAILOVER_SECONDS:.0f}s; "
            f"last: {type(last).__name__}: {last}{grpc_details(last, ': ')})"
            f"{plain_hint(grpc_details(last)) if self.tls is None else ''}"
        )


def _carried_over(name: str, after_timeout: bool, generator: bool) -> Callable[..., Any]:
    method = getattr(etcd3.MultiEndpointEtcd3Client, name)

    def call(self: FailoverClient, *args: Any, **kwargs: Any) -> Any:
        if generator:
            return self.carry_over(lambda: list(method(self, *args, **kwargs)), after_timeout)
        return self.carry_over(lambda: method(self, *args, **kwargs), after_timeout)

    call.__name__ = name
    call.__doc__ = method.__doc__
    return call


for _name, _after_timeout in _FAILOVER_CALLS.items():
    setattr(FailoverClient, _name, _carried_over(_name, _after_timeout, generator=False))
for _name, _after_timeout in _FAILOVER_GENERATORS.items():
    setattr(FailoverClient, _name, _carried_over(_name, _after_timeout, generator=True))


def connect(
    endpoints: str,
    timeout: float = policy.ETCD_REQUEST_TIMEOUT,
    *,
    tls: TLSFiles | None = None,
    server_names: list[str] | None = None,
) -> Any:
    """An etcd3 client for the given endpoints, failing over between them.

    https:// endpoints need ``tls``; ``server_names`` (one per endpoint) is the name
    each server certificate is checked against instead of the endpoint's host: the
    member's own address when the endpoint is a tunnel's loopback port.
    """
    urls = client_urls(endpoints, tls, server_names)
    secure = urls[0][0] == "https"
    credentials = _credentials(tls) if tls is not None else None
    # etcd3.client() would skip its only endpoint for 300 s after one failed request;
    # with nothing to fail over to, a lone endpoint is always worth trying again.
    retry = policy.ETCD_ENDPOINT_RETRY if len(urls) > 1 else 0.0
    options: list[tuple[str, int | str]] = [
        ("grpc.initial_reconnect_backoff_ms", int(policy.ETCD_GRPC_RECONNECT_INITIAL * 1000)),
        ("grpc.min_reconnect_backoff_ms", int(policy.ETCD_GRPC_RECONNECT_INITIAL * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(policy.ETCD_GRPC_RECONNECT_MAX * 1000)),
        ("grpc.max_receive_message_length", policy.ETCD_MAX_RESPONSE_BYTES),
    ]
    endpoint_list = []
    channel_options = []
    for i, (_, host, port) in enumerate(urls):
        opts = list(options)
        if secure and server_names is not None:
            opts.append(("grpc.ssl_target_name_override", server_names[i]))
        channel_options.append(opts)
        endpoint_list.append(
            etcd3.Endpoint(
                host, port, secure=secure, creds=credentials, time_retry=retry, opts=opts
            )
        )
    return FailoverClient(
        [f"{scheme}://{host}:{port}" for scheme, host, port in urls],
        tls,
        channel_options,
        endpoints=endpoint_list,
        timeout=timeout,
        failover=True,
    )


def _credentials(tls: TLSFiles) -> Any:
    ca_pem, cert_pem, key_pem = tls.read()
    return grpc.ssl_channel_credentials(
        root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem
    )


class LeaseCompare(transactions.BaseCompare):  # type: ignore[misc]
    """Compare a key's lease id in a transaction (etcd ≥ 3.3); python-etcd3 has none."""

    def build_compare(self, compare: Any) -> None:
        compare.target = etcdrpc.Compare.LEASE
        compare.lease = int(self.value)
