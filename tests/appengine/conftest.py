"""Installer fixtures: the app against the real Datastore emulator, emptied per test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from google.cloud import ndb

from appengine import create_app
from vulcano.lab.services import DatastoreEmulator

TEST_SECRET_KEY = "test-secret-key-not-for-production"

# An Install written straight to the model (no form, no rendering).
INSTALL_FIELDS: dict[str, Any] = dict(
    cluster_name="prod",
    ssh_keys=["ssh-ed25519 AAAA test"],
    flavour="cloud-init",
    image="ghcr.io/vulcano/provisioner:1",
    size=3,
    document="#cloud-config\n",
    content_type="text/cloud-config",
)


@pytest.fixture
def app(datastore: DatastoreEmulator) -> Flask:
    """The installer app on an empty emulator, CSRF on as in production."""
    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": TEST_SECRET_KEY,
            "DATASTORE_PROJECT": datastore.project,
            "VALIDATE_WITH_TOOLS": True,
        }
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def ndb_context(app: Flask) -> Iterator[ndb.Context]:
    """An ndb context on the app's client, for tests that read Datastore directly."""
    with app.extensions["ndb_client"].context() as context:
        yield context


_CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/") -> str:
    """The CSRF token of the form on ``path``, as a browser would read it."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    match = _CSRF_RE.search(page.text)
    assert match, f"no csrf_token on {path}"
    return match.group(1)
