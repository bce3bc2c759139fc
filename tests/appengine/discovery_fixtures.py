"""Fixtures for the discovery tests: the installer app, its test client, a real server.

Test modules load this with `pytest_plugins`, so the installer's own conftest stays theirs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.appengine.discovery_helpers import make_app
from tests.support import services
from tests.support.wsgi_server import WsgiServer


@pytest.fixture
def discovery_app(datastore: services.DatastoreEmulator) -> Flask:
    """The installer app against an emptied Datastore emulator."""
    return make_app(DATASTORE_PROJECT=datastore.project)


@pytest.fixture
def discovery_client(discovery_app: Flask) -> FlaskClient:
    return discovery_app.test_client()


@pytest.fixture
def installer_server(discovery_app: Flask) -> Iterator[WsgiServer]:
    """The installer on a real loopback HTTP server, where etcd can reach it."""
    with WsgiServer(discovery_app) as server:
        yield server
