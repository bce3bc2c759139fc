"""The connection to one cluster: its etcd endpoints and key prefix, made into a Registry.

The connection opens on first use and stays open until `close()`, so a face can make a
`Cluster` before it knows whether any command will need it (`vulcano --help` needs none).
Every service function talks through `Cluster.registry()`, which also turns etcd's client
errors into `ClusterUnavailable`, so callers see only the service layer's errors.

A face that changes things gives the connection an audit log and the actor: the
service functions then record each change there (`record`), after etcd took it, and
refuse to change anything while the log cannot be written (`audit_ready`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING

from container.services.errors import ClusterAddressError, ClusterUnavailable
from vulcano import etcd, policy
from vulcano.errors import VulcanoError
from vulcano.keyspace import DEFAULT_PREFIX, Keyspace
from vulcano.registry import Registry

if TYPE_CHECKING:
    from container.services.audit import Actor, AuditLog

DEFAULT_ENDPOINTS = "http://127.0.0.1:2379"


class Cluster:
    """One cluster as its etcd endpoints (comma-separated URLs) and key prefix name it."""

    def __init__(
        self,
        endpoints: str = DEFAULT_ENDPOINTS,
        prefix: str = DEFAULT_PREFIX,
        *,
        timeout: float = policy.ETCD_REQUEST_TIMEOUT,
        audit: AuditLog | None = None,
        actor: Actor | None = None,
        name: str | None = None,
    ) -> None:
        if audit is not None and actor is None:
            raise TypeError("an audited Cluster needs the actor making the changes")
        self.endpoints = endpoints
        self.prefix = prefix
        self.timeout = timeout
        self.audit = audit
        self.actor = actor
        self.name = name
        self._registry: Registry | None = None

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
                client = etcd.connect(self.endpoints, timeout=self.timeout)
            except (VulcanoError, ValueError) as exc:
                raise ClusterAddressError(str(exc)) from None
            self._registry = Registry(client, keyspace)
        return self._registry

    @contextlib.contextmanager
    def registry(self) -> Iterator[Registry]:
        """The cluster's registry, connected; etcd's errors inside become ClusterUnavailable.

        Raises ClusterAddressError when the endpoints or the prefix are not usable.
        """
        registry = self._connect()
        with etcd_errors():
            yield registry

    def close(self) -> None:
        """Close the connection, if one was opened; the cluster can be used again after."""
        if self._registry is not None:
            self._registry.client.close()
            self._registry = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Cluster({self.endpoints!r}, {self.prefix!r})"


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
