"""Fixtures for the discovery tests: the installer app, its test client, a real server.

Test modules load this with `pytest_plugins`, so the installer's own conftest stays theirs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import WSGIRequestHandler, make_server

from appengine import create_app
from tests.support import services

# Low enough that an idle watch ends quickly in tests; etcd re-sends it either way.
TEST_WATCH_TIMEOUT = 1.0


class _QuietHandler(WSGIRequestHandler):
    """Request lines carry discovery tokens: never log them."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def make_app(**config: Any) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "DISCOVERY_WATCH_TIMEOUT": TEST_WATCH_TIMEOUT,
            **config,
        }
    )


@pytest.fixture
def discovery_app(datastore: services.DatastoreEmulator) -> Flask:
    """The installer app against an emptied Datastore emulator."""
    return make_app()


@pytest.fixture
def discovery_client(discovery_app: Flask) -> FlaskClient:
    return discovery_app.test_client()


class InstallerServer:
    """The installer app served over real HTTP on 127.0.0.1, one thread per request."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._server = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> InstallerServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


@pytest.fixture
def installer_server(discovery_app: Flask) -> Iterator[InstallerServer]:
    with InstallerServer(discovery_app) as server:
        yield server
