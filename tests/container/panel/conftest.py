"""The admin panel's fixtures: the app made by its factory on a real state directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from container.panel import create_app
from container.services.provisioning import ProvisioningSettings


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def settings(state_dir: Path) -> ProvisioningSettings:
    return ProvisioningSettings(cluster_name="prod", cluster_size=3, state_dir=state_dir)


@pytest.fixture
def app(settings: ProvisioningSettings) -> Flask:
    return create_app({"TESTING": True}, settings=settings)


@pytest.fixture
def panel(app: Flask) -> FlaskClient:
    """A browser on the panel (Flask's test client)."""
    return app.test_client()
