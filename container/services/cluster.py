"""The connection to one cluster: its etcd endpoints and key prefix, made into a Registry.

The connection opens on first use and stays open until `close()`, so a face can make a
`Cluster` before it knows whether any command will need it (`vulcano --help` needs none).
Every service function talks through `Cluster.registry()`, which also turns etcd's client
errors into `ClusterUnavailable`, so callers see only the service layer's errors.

With a tunnel (``user@host[:port]``, fleetctl's ``--tunnel``) the connection first opens
an SSH connection to that host and forwards a loopback port to each etcd endpoint as the
tunnel host sees it; the etcd client talks to those ports. The tunnel opens lazily with
the rest and closes with ``close()``.

A face that changes things gives the connection an audit log and the actor: the
service functions then record each change there (`record`), after etcd took it, and
refuse to change anything while the log cannot be written (`audit_ready`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from container.services.errors import ClusterAddressError, ClusterUnavailable
from container.ssh.errors import DestinationError
from container.ssh.settings import SSHSettings
from container.ssh.tunnel import Tunnel, open_tunnel
from vulcano import etcd, policy
from vulcano.closing import ClosesOnExit
from vulcano.errors import VulcanoError
from vulcano.keyspace import DEFAULT_PREFIX, Keyspace
from vulcano.registry import Registry

if TYPE_CHECKING:
    from container.services.audit import Actor, AuditLog

DEFAULT_ENDPOINTS = "http://127.0.0.1:2379"


class Cluster(ClosesOnExit):
    """One cluster as its etcd endpoints (comma-separated URLs) and key prefix name it."""

    def __init__(
        self,
        endpoints: str = DEFAULT_ENDPOINTS,
        prefix: str = DEFAULT_PREFIX,
        *,
        timeout: float = policy.ETCD_REQUEST_TIMEOUT,
        tls: etcd.TLSFiles | None = None,
        tunnel: str | None = None,
        ssh: SSHSettings | None = None,
        audit: AuditLog | None = None,
        actor: Actor | None = None,
        name: str | None = None,
    ) -> None:
        if audit is not None and actor is None:
            raise TypeError("an audited Cluster needs the actor making the changes")
        self.endpoints = endpoints
        self.prefix = prefix
        self.timeout = timeout
        self.tls = tls
        self.tunnel = tunnel or None
        self.ssh = ssh or SSHSettings()
        self.audit = audit
        self.actor = actor
        self.name = name
        self._registry: Registry | None = None
        self._tunnel: Tunnel | None = None
        self._through: dict[str, str] = {}  # local URL -> the endpoint it is carried to

    @property
    def label(self) -> str:
        """How the audit log names this cluster: its name, or its prefix at its endpoints."""
        return self.name or f"{self.prefix} at {self.endpoints}"

    def audit_ready(self) -> None:
        """Raise (StateDirError, StoreError) if a change could not be audited: before it."""
        if self.audit is not None:
            self.audit.ready()

    def record(self, action: str, target: str, *, detail: str = "", diff: str = "") -> None:
        """Audit one change etcd has taken (nothing when this connection is not audited)."""
        if self.audit is not None and self.actor is not None:
            self.audit.record(
                self.actor, action, target, cluster=self.label, detail=detail, diff=diff
            )

    def _connect(self) -> Registry:
        if self._registry is None:
            try:
                keyspace = Keyspace(self.prefix)
                server_names = None
                if self.tunnel:
                    endpoints, server_names = self._tunnelled(self.endpoints)
                else:
                    endpoints = self.endpoints
                client = etcd.connect(
                    endpoints, timeout=self.timeout, tls=self.tls, server_names=server_names
                )
            except (DestinationError, etcd.EndpointError, etcd.TLSFileError, ValueError) as exc:
                self._close_tunnel()
                raise ClusterAddressError(str(exc)) from None
            except VulcanoError:
                self._close_tunnel()
                raise
            self._registry = Registry(client, keyspace)
        return self._registry

    def _tunnelled(self, endpoints: str) -> tuple[str, list[str]]:
        """The endpoints as loopback ports forwarded through the tunnel host, and the
        name each member's server certificate is checked against: its own host, as
        the tunnel only carries TCP and the TLS session is still with the member."""
        urls = etcd.parse_urls(endpoints)
        assert self.tunnel is not None
        self._tunnel = open_tunnel(self.tunnel, self.ssh)
        local = []
        for scheme, host, port in urls:
            url = f"{scheme}://127.0.0.1:{self._tunnel.forward(host, port)}"
            self._through[url] = f"{scheme}://{host}:{port} (through {self._tunnel.name})"
            local.append(url)
        return ",".join(local), [host for _, host, _ in urls]

    def _close_tunnel(self) -> None:
        if self._tunnel is not None:
            self._tunnel.close()
            self._tunnel = None
            self._through = {}

    @contextlib.contextmanager
    def registry(self) -> Iterator[Registry]:
        """The cluster's registry, connected; etcd's errors inside become ClusterUnavailable.

        Raises ClusterAddressError when the endpoints or the prefix are not usable.
        """
        registry = self._connect()
        try:
            with etcd_errors():
                yield registry
        except ClusterUnavailable as exc:
            if not self._through:
                raise
            message = str(exc)
            for url, carried in self._through.items():
                message = message.replace(url, carried)
            raise ClusterUnavailable(message) from None

    def close(self) -> None:
        """Close the connection (and its tunnel), if one was opened; it can be used again."""
        if self._registry is not None:
            self._registry.client.close()
            self._registry = None
        self._close_tunnel()

    def __repr__(self) -> str:
        through = f", tunnel={self.tunnel!r}" if self.tunnel else ""
        return f"Cluster({self.endpoints!r}, {self.prefix!r}{through})"


@contextlib.contextmanager
def etcd_errors() -> Iterator[None]:
    """Turn etcd's client errors raised inside the block into ClusterUnavailable."""
    try:
        yield
    except Exception as exc:
        message = etcd.client_error_message(exc)
        if message is None:
            raise
        raise ClusterUnavailable(message) from None
