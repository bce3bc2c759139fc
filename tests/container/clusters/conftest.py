"""Fixtures for the cluster commands: the real hosted installer (gunicorn, the Datastore
emulator), an install made through its form, and a state dir that install's provisioning
machine would have — the installer's URL and the install's provisioner token taken from
the very document the installer served."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from container.cli import main
from container.panel import tls
from container.services import enrolment
from container.services.installer import INSTALLER_TOKEN_FILE_VAR, INSTALLER_URL_VAR
from container.store import DATABASE_NAME, Store, open_store
from vulcano import cloudconfig
from vulcano.lab import provisioning
from vulcano.lab.installer import InstallerServer, installer_server
from vulcano.lab.services import DatastoreEmulator

Invoke = Callable[..., Result]


@dataclass(frozen=True)
class Install:
    """An install made on the installer's form: its manage token and its document's
    installer settings, as the provisioning machine's unit hands them to the container."""

    manage_token: str
    installer_url: str
    provisioner_token: str


@pytest.fixture(scope="module")
def installer(
    datastore_emulator: DatastoreEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InstallerServer]:
    log = tmp_path_factory.mktemp("installer") / "gunicorn.log"
    # One install serves the module's tests, each making clusters: past the default ten
    # discovery URLs an install may have (that bound is the installer's own tests').
    limits = {"VULCANO_DISCOVERY_TOKENS_PER_INSTALL": "1000"}
    with installer_server(datastore_emulator, log, threads=4, env_extra=limits) as server:
        yield server


def installer_settings(document_text: str) -> tuple[str, str]:
    """The installer URL (the unit's Environment=) and the token (its 0600 file)."""
    data = yaml.safe_load(document_text)
    files = {f["path"]: f for f in data["write_files"]}
    token = files[cloudconfig.INSTALLER_TOKEN_HOST_PATH]
    assert token["permissions"] == "0600"
    unit = files[provisioning.UNIT_PATH]["content"]
    prefix = "Environment=VULCANO_INSTALLER_URL="
    (url,) = [line[len(prefix) :] for line in unit.splitlines() if line.startswith(prefix)]
    return url, str(token["content"])


@pytest.fixture(scope="module")
def install(installer: InstallerServer) -> Install:
    document = provisioning.create_install(installer, cluster_name="prod", size=3)
    url, token = installer_settings(document.text)
    return Install(document.token, url, token)


# Where the panel of these tests' provisioning machine listens, as nodes reach it.
PANEL_URL = "https://192.0.2.10:8443"


@pytest.fixture
def state_dir(tmp_path: Path, install: Install) -> Path:
    """The provisioning machine's state dir: the token file its unit copied in (0600),
    and what its `vulcano serve` made and recorded on its start (the panel's certificate,
    where nodes reach the panel: what a member enrolling at boot is told)."""
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    token = path / cloudconfig.INSTALLER_TOKEN_NAME
    token.write_text(install.provisioner_token)
    token.chmod(0o600)
    cert = tls.ensure_certificate(path, tls.machine_names(["192.0.2.10"]))
    enrolment.record_panel(path, enrolment.PanelEndpoint(PANEL_URL, cert.spki_pin))
    return path


@pytest.fixture
def store(state_dir: Path) -> Store:
    return open_store(state_dir)


@pytest.fixture
def vulcano(state_dir: Path, install: Install) -> Invoke:
    """`vulcano --state-dir STATE ARGS…` with the environment the installer's unit sets."""
    runner = CliRunner()
    env = {
        INSTALLER_URL_VAR: install.installer_url,
        INSTALLER_TOKEN_FILE_VAR: str(state_dir / cloudconfig.INSTALLER_TOKEN_NAME),
    }

    def invoke(*args: str, env_extra: dict[str, str] | None = None) -> Result:
        return runner.invoke(
            main,
            ["--state-dir", str(state_dir), *args],
            env={**env, **(env_extra or {})},
            catch_exceptions=False,
        )

    return invoke


def rows(state_dir: Path) -> list[dict[str, Any]]:
    """Every cluster row, read straight from the database file (none without one)."""
    path = state_dir / DATABASE_NAME
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM clusters ORDER BY name")]
    finally:
        conn.close()


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)
