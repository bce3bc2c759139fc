"""The panel's app factory: settings from the installer's unit, its pages, its health."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from container.panel import create_app
from container.services.errors import SettingsError, StateDirError
from container.services.provisioning import ProvisioningSettings
from tests.container.panel.conftest import PASSWORD, Browser

UNIT_ENV = {
    "VULCANO_CLUSTER_NAME": "prod",
    "VULCANO_CLUSTER_SIZE": "5",
}


def test_the_factory_reads_the_settings_the_installers_unit_passes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key, value in {**UNIT_ENV, "VULCANO_STATE_DIR": str(tmp_path / "s")}.items():
        monkeypatch.setenv(key, value)
    app = create_app({"TESTING": True})
    assert app.config["PROVISIONING"] == ProvisioningSettings("prod", 5, tmp_path / "s")


def test_the_state_dir_defaults_to_the_images_volume() -> None:
    settings = ProvisioningSettings.from_environ(UNIT_ENV)
    assert settings.state_dir == Path("/var/lib/vulcano")


def test_the_factory_makes_a_missing_state_dir_private(panel: FlaskClient, state_dir: Path) -> None:
    assert state_dir.is_dir()
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700


def test_the_container_makes_its_ssh_key_on_first_start(
    panel: FlaskClient, state_dir: Path
) -> None:
    private = state_dir / "id_ed25519"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert (state_dir / "id_ed25519.pub").read_text().startswith("ssh-ed25519 ")


@pytest.mark.parametrize(
    ("changes", "named", "says"),
    [
        ({"VULCANO_CLUSTER_NAME": ""}, "VULCANO_CLUSTER_NAME", "lowercase letters"),
        ({"VULCANO_CLUSTER_NAME": "Prod_1"}, "VULCANO_CLUSTER_NAME", "lowercase letters"),
        ({"VULCANO_CLUSTER_SIZE": "three"}, "VULCANO_CLUSTER_SIZE", "whole number"),
        ({"VULCANO_CLUSTER_SIZE": "0"}, "VULCANO_CLUSTER_SIZE", "between 1 and 100"),
        ({"VULCANO_CLUSTER_SIZE": "101"}, "VULCANO_CLUSTER_SIZE", "between 1 and 100"),
        ({"VULCANO_STATE_DIR": "state"}, "VULCANO_STATE_DIR", "absolute path"),
    ],
)
def test_a_setting_it_cannot_use_is_refused_naming_the_variable(
    changes: dict[str, str], named: str, says: str
) -> None:
    with pytest.raises(SettingsError, match=says) as caught:
        ProvisioningSettings.from_environ({**UNIT_ENV, **changes})
    assert caught.value.setting == named
    assert str(caught.value).startswith(f"{named}=")


def test_a_missing_cluster_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        ProvisioningSettings.from_environ({"VULCANO_CLUSTER_SIZE": "3"})
    assert caught.value.setting == "VULCANO_CLUSTER_NAME"


def test_a_state_dir_it_cannot_write_stops_the_factory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    settings = ProvisioningSettings("prod", 3, blocker)
    with pytest.raises(StateDirError, match=f"state directory {blocker}"):
        create_app({"TESTING": True}, settings=settings)


def test_health_answers_with_the_cluster_while_the_state_dir_is_writable(
    panel: FlaskClient,
) -> None:
    answer = panel.get("/healthz")
    assert answer.status_code == 200
    assert answer.json == {
        "status": "ok",
        "cluster_name": "prod",
        "cluster_size": 3,
        "state_dir_writable": True,
        "version": "0.1.0",
    }


def test_health_fails_once_the_state_dir_cannot_be_written(
    panel: FlaskClient, state_dir: Path
) -> None:
    shutil.rmtree(state_dir)
    state_dir.write_text("a file where the state directory was")
    answer = panel.get("/healthz")
    assert answer.status_code == 503
    assert answer.json is not None
    assert answer.json["status"] == "failing"
    assert answer.json["state_dir_writable"] is False


def test_health_leaves_nothing_in_the_state_dir(panel: FlaskClient, state_dir: Path) -> None:
    before = sorted(p.name for p in state_dir.iterdir())
    panel.get("/healthz")
    assert sorted(p.name for p in state_dir.iterdir()) == before
    assert not [name for name in before if name.startswith(".write-check-")]


def test_the_front_page_shows_the_provisioning_settings(admin: Browser, state_dir: Path) -> None:
    page = admin.get("/")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert "<h1>Clusters</h1>" in page.text
    assert "cluster <strong>prod</strong>\n(3 machines)" in page.text
    assert f"<code>{state_dir}</code>" in page.text


def test_a_one_machine_cluster_is_one_machine(state_dir: Path) -> None:
    app = create_app(
        {"TESTING": True},
        settings=ProvisioningSettings("solo", 1, state_dir),
        environ={"VULCANO_ADMIN_PASSWORD": PASSWORD},
    )
    browser = Browser(app.test_client())
    browser.login()
    assert "(1 machine)" in browser.get("/").text


def test_an_unknown_page_is_a_404_page(panel: FlaskClient) -> None:
    page = panel.get("/no-such-page")
    assert page.status_code == 404
    assert page.mimetype == "text/html"
    assert "<h1>404</h1>" in page.text


def test_health_takes_only_get(panel: FlaskClient) -> None:
    assert panel.post("/healthz").status_code == 405
