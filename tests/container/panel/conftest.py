"""The admin panel's fixtures: the app made by its factory on a real state directory,
a logged-in browser on it (Flask's test client), and clusters on the real test etcd."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from container.panel import create_app
from container.services import clusters
from container.services.provisioning import ProvisioningSettings
from container.store import Store, open_store
from tests.container.panel.lab import Lab, running_lab
from vulcano.lab.services import Etcd

PASSWORD = "correct horse battery staple"
DISCOVERY_URL = "https://installer.example/discovery/0123456789abcdef"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def settings(state_dir: Path) -> ProvisioningSettings:
    return ProvisioningSettings(cluster_name="prod", cluster_size=3, state_dir=state_dir)


@pytest.fixture
def app(settings: ProvisioningSettings) -> Flask:
    return create_app(
        {"TESTING": True}, settings=settings, environ={"VULCANO_ADMIN_PASSWORD": PASSWORD}
    )


@pytest.fixture
def store(app: Flask, state_dir: Path) -> Store:
    return open_store(state_dir)


class Browser:
    """A browser on the panel: it keeps its cookies and sends the page's CSRF token."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.token = ""

    def get(self, path: str, **kw: object) -> TestResponse:
        page = self.client.get(path, **kw)  # type: ignore[arg-type]
        found = _TOKEN.search(page.text)
        if found:
            self.token = found.group(1)
        return page

    def post(self, path: str, data: dict[str, object] | None = None, **kw: object) -> TestResponse:
        """POST a form as the page would: with the CSRF token of the last page read."""
        if not self.token:
            self.get("/login")
        form = {"csrf_token": self.token, **(data or {})}
        return self.client.post(path, data=form, **kw)  # type: ignore[arg-type]

    def login(self, password: str = PASSWORD, **kw: object) -> TestResponse:
        """Log in; once in, the token is the new session's (a login starts a fresh one)."""
        self.get("/login")
        answer = self.post("/login", {"password": password}, **kw)
        if answer.status_code == 302:
            self.get("/clusters")
        return answer


@pytest.fixture
def panel(app: Flask) -> FlaskClient:
    """Flask's test client, logged out."""
    return app.test_client()


@pytest.fixture
def browser(panel: FlaskClient) -> Browser:
    """A browser that has not logged in."""
    return Browser(panel)


@pytest.fixture
def admin(browser: Browser) -> Browser:
    """A browser logged in as the admin."""
    assert browser.login().status_code == 302
    return browser


def add_cluster(store: Store, name: str, endpoints: str, size: int = 3) -> None:
    """A cluster row as `vulcano cluster create` leaves it once its members are up."""
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO clusters (name, size, flavour, network, discovery_url, endpoints, "
            "created_at, etcd_size) VALUES (?, ?, 'cloud-init', '10.244.0.0/16', ?, ?, ?, ?)",
            (name, size, DISCOVERY_URL, endpoints, time.time(), clusters.etcd_size(size)),
        )


@pytest.fixture
def lab_cluster(store: Store, etcd: Etcd) -> Iterator[str]:
    """The cluster named 'lab', on the real test etcd."""
    add_cluster(store, "lab", etcd.endpoint)
    yield "lab"


@pytest.fixture
def lab(etcd: Etcd, tmp_path: Path) -> Iterator[Lab]:
    """Two simulated machines on the test etcd, running units with the builtin runner."""
    with running_lab(etcd, tmp_path / "nodes") as running:
        yield running
