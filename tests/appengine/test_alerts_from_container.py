"""The container's test alert: its Installer client against the real installer app served
on loopback (the emulator behind it), through to a real webhook."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from appengine.models import provisioner_token, read_token
from container.cli import main
from container.services.errors import InstallerError
from container.services.installer import Installer
from tests.appengine.alert_sinks import Webhook, webhook_receiver
from tests.appengine.conftest import csrf_token
from tests.appengine.test_installs import create
from vulcano import cloudconfig


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    hosts = [*app.config["TRUSTED_HOSTS_LIST"], "127.0.0.1"]
    app.config.update(ALERT_WEBHOOK_ALLOW_PRIVATE=True, TRUSTED_HOSTS_LIST=hosts)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture
def hook() -> Iterator[Webhook]:
    with webhook_receiver() as receiver:
        yield receiver


def test_the_container_sends_a_test_alert_to_the_installs_webhook(
    client: FlaskClient, served: str, hook: Webhook
) -> None:
    token = create(client)
    data = {
        "csrf_token": csrf_token(client, f"/installs/{token}"),
        "emails": "",
        "webhooks": hook.url,
    }
    assert client.post(f"/installs/{token}/alerts", data=data).status_code == 303
    installer = Installer(served, provisioner_token(read_token(token)))
    assert installer.send_test_alert() == (1, 0)
    assert [b["test"] for b in hook.bodies] == [True]
    with pytest.raises(InstallerError, match="refused a test alert: 401"):
        Installer(served, "y" * 43).send_test_alert()


def test_vulcano_test_alert_reports_what_the_destinations_took(
    client: FlaskClient, served: str, hook: Webhook, tmp_path: Path
) -> None:
    token = create(client)
    (tmp_path / cloudconfig.INSTALLER_TOKEN_NAME).write_text(provisioner_token(read_token(token)))
    env = {"VULCANO_STATE_DIR": str(tmp_path), "VULCANO_INSTALLER_URL": served}
    none_set = CliRunner().invoke(main, ["test-alert"], env=env)
    assert none_set.exit_code == 1 and "test alert: 0 delivered, 0 failed" in none_set.output
    assert "set them on the install's page" in none_set.output

    data = {"csrf_token": csrf_token(client, f"/installs/{token}"), "webhooks": hook.url}
    client.post(f"/installs/{token}/alerts", data=data)
    result = CliRunner().invoke(main, ["test-alert"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output == "test alert: 1 delivered, 0 failed\n"
    assert len(hook.bodies) == 1
