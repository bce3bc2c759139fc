"""Generated user-data names the released provisioning image by its digest, when known."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appengine import ConfigError, create_app
from appengine.models import read_token
from tests.appengine.conftest import TEST_SECRET_KEY
from tests.appengine.test_installs import create
from vulcano.lab.services import DatastoreEmulator

RELEASED = "ghcr.io/vulcano/provisioner:1.0"
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def app(datastore: DatastoreEmulator) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": TEST_SECRET_KEY,
            "DATASTORE_PROJECT": datastore.project,
            "PROVISIONER_IMAGE": RELEASED,
            "PROVISIONER_DIGEST": DIGEST,
        }
    )


def _unit_image(client: FlaskClient, manage: str) -> str:
    document = client.get(f"/cloud-config/{read_token(manage)}").text
    [line] = [line for line in document.splitlines() if "VULCANO_IMAGE=" in line]
    return line.split("VULCANO_IMAGE=", 1)[1]


def test_the_released_image_is_pinned_by_its_digest(client: FlaskClient) -> None:
    page = client.get("/").text
    assert f'value="{RELEASED}"' in page
    assert DIGEST in page
    assert _unit_image(client, create(client, image=RELEASED)) == f"{RELEASED}@{DIGEST}"


def test_an_image_with_its_own_digest_or_another_image_is_kept_as_given(
    client: FlaskClient,
) -> None:
    own = "ghcr.io/vulcano/provisioner:1.0@sha256:" + "cd" * 32
    assert _unit_image(client, create(client, image=own)) == own
    other = "registry.example/me/provisioner:dev"
    assert _unit_image(client, create(client, image=other)) == other


def test_a_malformed_digest_is_a_config_error(
    datastore: DatastoreEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VULCANO_PROVISIONER_DIGEST", "sha256:nothex")
    with pytest.raises(ConfigError, match="VULCANO_PROVISIONER_DIGEST"):
        create_app({"SECRET_KEY": TEST_SECRET_KEY, "DATASTORE_PROJECT": datastore.project})
