"""The installer's Datastore client: one ndb context per request."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from google.cloud import ndb

if TYPE_CHECKING:
    from flask import Flask


class NdbMiddleware:
    """WSGI middleware that runs every request inside an ndb client context."""

    def __init__(self, wsgi_app: Any, client: ndb.Client) -> None:
        self.wsgi_app = wsgi_app
        self.client = client

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with self.client.context():
            # Materialise the body inside the context: views may read Datastore lazily.
            return list(self.wsgi_app(environ, start_response))


def make_client(project: str | None = None) -> ndb.Client:
    """An ndb client; with DATASTORE_EMULATOR_HOST set it talks to the emulator."""
    project = (
        project or os.environ.get("DATASTORE_PROJECT_ID") or os.environ.get("GOOGLE_CLOUD_PROJECT")
    )
    if os.environ.get("DATASTORE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return ndb.Client(project=project, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    return ndb.Client(project=project)


def init_app(app: Flask, client: ndb.Client | None = None) -> ndb.Client:
    """Give the app an ndb client and wrap it so every request has a context."""
    client = client or make_client(app.config.get("DATASTORE_PROJECT"))
    app.extensions["ndb_client"] = client
    app.wsgi_app = NdbMiddleware(app.wsgi_app, client)  # type: ignore[method-assign]
    return client
