"""An etcd v3 client over etcd's JSON gateway (HTTP/1.1 on the client port), standard
library only: what the agent process speaks, so it never loads gRPC or protobuf.

`connect` takes what `vulcano.etcd.connect` takes and gives a client with the same
calls and results (`client.HttpClient`); `vulcano.watch` watches on it.
"""

from __future__ import annotations

from vulcano import policy
from vulcano.etcdhttp.client import HttpClient, Lease
from vulcano.etcdhttp.transport import EtcdRequestError, Member
from vulcano.etcdtls import TLSFiles

__all__ = ["EtcdRequestError", "HttpClient", "Lease", "connect"]


def connect(
    endpoints: str,
    timeout: float = policy.ETCD_REQUEST_TIMEOUT,
    *,
    tls: TLSFiles | None = None,
    server_names: list[str] | None = None,
) -> HttpClient:
    """A client for the given endpoints, failing over between them.

    https:// endpoints need ``tls``; ``server_names`` (one per endpoint) is the name
    each server certificate is checked against instead of the endpoint's host.
    """
    from vulcano.etcd import client_urls

    urls = client_urls(endpoints, tls, server_names)
    members = [
        Member(scheme, host, port, server_names[i] if server_names else None)
        for i, (scheme, host, port) in enumerate(urls)
    ]
    return HttpClient(members, tls, timeout)
