"""What a view works with: the store, the cluster a page is about, and errors as pages.

A page under ``/clusters/<name>/`` connects to that cluster once per request
(`clusters.connect`) and the connection is closed when the request ends. The service
layer's errors become HTTP statuses here, each page showing the operator's message.
"""

from __future__ import annotations

import logging

from flask import Flask, abort, current_app, g, render_template, request

from container.panel import auth
from container.services import clusters
from container.services.audit import Actor, AuditLog
from container.services.cluster import Cluster
from container.services.errors import (
    ClusterAddressError,
    ClusterNotFound,
    ClusterUnavailable,
    UnitContentConflict,
    UnitContentMissing,
    UnitFileError,
    UnitNotFound,
    UnitSourceError,
)
from container.store import Store
from vulcano.errors import VulcanoError

log = logging.getLogger(__name__)


class BadField(ValueError):
    """A form field we cannot use: 400, naming it, and nothing changed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def store() -> Store:
    found = current_app.extensions["vulcano.store"]
    assert isinstance(found, Store)
    return found


def cluster(name: str) -> Cluster:
    """The named cluster, connected for this request (404 when there is none).

    Its changes are audited as the admin at the client's address (`auth.actor_name`).
    """
    connected: dict[str, Cluster] = g.setdefault("clusters", {})
    if name not in connected:
        try:
            connected[name] = _audited(clusters.connect(store(), name), name)
        except ClusterNotFound as exc:
            abort(404, str(exc))
    return connected[name]


def _audited(plain: Cluster, name: str) -> Cluster:
    return Cluster(
        plain.endpoints,
        plain.prefix,
        timeout=plain.timeout,
        tls=plain.tls,
        audit=AuditLog(store()),
        actor=Actor(auth.actor_name(), auth.FACE),
        name=name,
    )


def init_app(app: Flask) -> None:
    @app.teardown_appcontext
    def close_clusters(_: BaseException | None) -> None:
        for connected in g.pop("clusters", {}).values():
            connected.close()

    def page(code: int, message: str, field: str = "") -> tuple[str, int]:
        return render_template("error.html", code=code, message=message, field=field), code

    @app.errorhandler(BadField)
    def bad_field(exc: BadField) -> tuple[str, int]:
        return page(400, str(exc), exc.field)

    @app.errorhandler(UnitSourceError)
    @app.errorhandler(UnitFileError)
    def bad_unit(exc: Exception) -> tuple[str, int]:
        return page(400, f"unit_file: {exc}", "unit_file")

    @app.errorhandler(UnitContentConflict)
    def conflict(exc: UnitContentConflict) -> tuple[str, int]:
        message = f"unit_file: {exc} (tick 'replace' to submit the new content)"
        return page(409, message, "unit_file")

    @app.errorhandler(UnitNotFound)
    @app.errorhandler(UnitContentMissing)
    @app.errorhandler(ClusterNotFound)
    def not_found(exc: Exception) -> tuple[str, int]:
        return page(404, str(exc))

    @app.errorhandler(ClusterUnavailable)
    def unavailable(exc: ClusterUnavailable) -> tuple[str, int]:
        return page(503, f"the cluster's etcd did not answer: {exc}")

    @app.errorhandler(ClusterAddressError)
    def unusable(exc: ClusterAddressError) -> tuple[str, int]:
        return page(503, f"the cluster's etcd endpoints cannot be used: {exc}")

    @app.errorhandler(VulcanoError)
    def failed(exc: VulcanoError) -> tuple[str, int]:
        # any other error raised on purpose (the store, the audit log): its own words
        log.error("%s %s: %s", request.method, request.path, exc)
        return page(500, str(exc))
