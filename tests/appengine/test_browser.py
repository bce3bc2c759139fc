"""A real browser fills the form and reads the generated document from the page."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.conftest import require
from vulcano.lab.installer import InstallerServer, installer_server
from vulcano.lab.services import DatastoreEmulator
from vulcano.lab.sshkeys import ed25519_line

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def live_installer(datastore: DatastoreEmulator, tmp_path: Path) -> Iterator[InstallerServer]:
    with installer_server(datastore, tmp_path / "gunicorn.log") as server:
        yield server


@pytest.fixture
def page(tmp_path: Path) -> Iterator[object]:
    require(os.path.exists(CHROMIUM), "needs Debian's chromium")
    require(shutil.which("cloud-init") is not None, "needs Debian's cloud-init")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            yield context.new_page()
        finally:
            context.close()


@pytest.mark.slow
def test_browser_fills_the_form_and_reads_the_document(
    live_installer: InstallerServer, page: object
) -> None:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    key = ed25519_line("alice@laptop")
    page.goto(live_installer.url + "/")
    page.fill("#cluster_name", "prod")
    page.fill("#ssh_keys", key)
    page.select_option("#flavour", "cloud-init")
    page.fill("#image", "ghcr.io/vulcano/provisioner:2.0")
    page.fill("#size", "5")
    page.click("#generate")
    page.wait_for_selector("#document")

    document_text = page.inner_text("#document")
    document = yaml.safe_load(document_text)
    assert document_text.startswith("#cloud-config\n")
    assert document["ssh_authorized_keys"] == [key]
    unit = document["write_files"][0]["content"]
    assert "Environment=VULCANO_IMAGE=ghcr.io/vulcano/provisioner:2.0" in unit.splitlines()
    assert "Environment=VULCANO_CLUSTER_SIZE=5" in unit.splitlines()

    token = page.inner_text("#token")
    permalink = page.get_attribute("#permalink", "href")
    assert permalink == f"/cloud-config/{token}"
    served = requests.get(live_installer.url + permalink, timeout=10)
    assert served.status_code == 200
    assert served.headers["Content-Type"] == "text/cloud-config; charset=utf-8"
    assert served.text == document_text.rstrip("\n") + "\n"
    assert f"{live_installer.url}/cloud-config/{token}" in page.inner_text("#include")

    page.click("#delete")
    page.wait_for_selector(".flash")
    assert requests.get(live_installer.url + permalink, timeout=10).status_code == 404

    log = live_installer.log()
    assert "POST /installs" in log  # the access log is on: a token would show up here
    assert token not in log
    assert "/cloud-config/<token>" in log


@pytest.mark.slow
def test_browser_sees_the_field_named_when_an_answer_is_bad(
    live_installer: InstallerServer, page: object
) -> None:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    page.goto(live_installer.url + "/")
    page.fill("#cluster_name", "prod")
    page.fill("#ssh_keys", "ssh-ed25519 not-a-key me")
    page.fill("#image", "ghcr.io/vulcano/provisioner:2.0")
    page.click("#generate")
    error = page.wait_for_selector("#error")
    assert error is not None
    assert error.get_attribute("data-field") == "ssh_keys"
    assert "ssh_keys: line 1: key data is not valid base64" in error.inner_text()
    # The answers survive the round trip so the user can fix just the one field.
    assert page.input_value("#cluster_name") == "prod"
