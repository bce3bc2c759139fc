"""The demo's installer says that it keeps nothing once it stops (VULCANO_EPHEMERAL)."""

from __future__ import annotations

from appengine import create_app
from vulcano.lab import services

CONFIG = {"SECRET_KEY": "k" * 32, "TRUSTED_HOSTS_LIST": ["localhost"], "WTF_CSRF_ENABLED": False}


def test_the_demo_installer_says_it_keeps_installs_in_memory(
    datastore: services.DatastoreEmulator,
) -> None:
    app = create_app({**CONFIG, "EPHEMERAL": True})
    page = app.test_client().get("/", headers={"Host": "localhost"})
    assert page.status_code == 200
    assert 'id="ephemeral"' in page.text and "gone when the demo stops" in page.text


def test_a_real_installer_says_nothing_of_the_kind(datastore: services.DatastoreEmulator) -> None:
    app = create_app({**CONFIG, "EPHEMERAL": False})
    page = app.test_client().get("/", headers={"Host": "localhost"})
    assert page.status_code == 200
    assert 'id="ephemeral"' not in page.text
