"""Fixtures for the discovery tests: the installer app, its test client, a real server.

Test modules load this with `pytest_plugins`, so the installer's own conftest stays theirs.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.appengine.discovery_helpers import MemberFactory, make_app
from tests.conftest import require
from vulcano.lab import services
from vulcano.lab.services import Etcd, new_etcd
from vulcano.lab.wsgi import WsgiServer


@pytest.fixture
def discovery_app(datastore: services.DatastoreEmulator) -> Flask:
    """The installer app against an emptied Datastore emulator."""
    return make_app(DATASTORE_PROJECT=datastore.project)


@pytest.fixture
def discovery_client(discovery_app: Flask) -> FlaskClient:
    return discovery_app.test_client()


@pytest.fixture
def discovery_server(discovery_app: Flask) -> Iterator[WsgiServer]:
    """The installer on a real loopback HTTP server, where etcd can reach it."""
    with WsgiServer(discovery_app) as server:
        yield server


@pytest.fixture
def members(tmp_path: Path) -> Iterator[MemberFactory]:
    """Make real etcd 3.4 members on loopback ports; every one is stopped at teardown."""
    require(shutil.which("etcd") is not None, "needs Debian's etcd-server")
    require(shutil.which("etcdctl") is not None, "needs Debian's etcd-client")
    started: list[Etcd] = []

    def make(name: str, *etcd_args: str) -> Etcd:
        member = new_etcd(tmp_path, name, extra_args=list(etcd_args))
        started.append(member)
        return member

    yield make
    for member in started:
        member.stop()
