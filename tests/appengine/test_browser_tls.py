"""Over real TLS, as users reach the installer: every form works in a real browser.

gunicorn serves HTTPS with a certificate the test made; headless Chromium trusts only
that key. Flask-WTF's strict referrer check is on (it is on whenever the request is
HTTPS), so a page that sent no Referer would have every POST refused.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.appengine.browser import chromium_page, make_certificate
from tests.conftest import require
from vulcano.lab.installer import InstallerServer, installer_server
from vulcano.lab.services import DatastoreEmulator
from vulcano.lab.sshkeys import ed25519_line


@pytest.fixture
def tls_installer(datastore: DatastoreEmulator, tmp_path: Path) -> Iterator[InstallerServer]:
    require(shutil.which("cloud-init") is not None, "needs Debian's cloud-init")
    cert = make_certificate(tmp_path)
    with installer_server(datastore, tmp_path / "gunicorn.log", threads=4, tls=cert) as server:
        yield server


@pytest.fixture
def tls_page(tls_installer: InstallerServer, tmp_path: Path) -> Iterator[object]:
    assert isinstance(tls_installer.verify, str)
    with chromium_page(tmp_path / "chromium-profile", Path(tls_installer.verify)) as page:
        yield page


@pytest.mark.slow
def test_browser_over_tls_creates_views_and_deletes_an_install(
    tls_installer: InstallerServer, tls_page: object
) -> None:
    from playwright.sync_api import Page

    page = tls_page
    assert isinstance(page, Page)
    assert tls_installer.url.startswith("https://")
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    front = page.goto(tls_installer.url + "/")
    assert front is not None
    assert front.headers["strict-transport-security"].startswith("max-age=")
    page.fill("#cluster_name", "tls")
    page.fill("#ssh_keys", ed25519_line("alice@laptop"))
    page.select_option("#flavour", "cloud-init")
    page.fill("#image", "ghcr.io/vulcano/provisioner:2.0")
    page.fill("#size", "3")
    page.click("#generate")
    page.wait_for_selector("#document")
    assert page.inner_text("#cluster-name") == "tls"
    manage_url = page.url
    permalink = page.get_attribute("#permalink", "href")
    assert permalink is not None

    # The discovery form is a POST too.
    page.click("#discovery-create")
    page.wait_for_selector(".discovery-url")
    assert page.inner_text(".discovery-url").startswith(tls_installer.url + "/discovery/")

    # Come back with the manage token (the lookup form is a POST), then view it again.
    manage_token = page.inner_text("#token")
    page.goto(tls_installer.url + "/")
    page.fill("#token", manage_token)
    page.click("#lookup-form button[type=submit]")
    page.wait_for_selector("#cluster-name")
    assert page.url == manage_url
    page.goto(manage_url)
    assert page.inner_text("#cluster-name") == "tls"
    served = requests.get(tls_installer.url + permalink, timeout=10, verify=tls_installer.verify)
    assert served.status_code == 200
    assert served.text.startswith("#cloud-config\n")

    page.click("#delete")
    page.wait_for_selector(".flash")
    assert "was deleted" in page.inner_text(".flash")
    gone = requests.get(tls_installer.url + permalink, timeout=10, verify=tls_installer.verify)
    assert gone.status_code == 404
    assert "csrf" not in tls_installer.log().lower()
    # The pages' CSP (no inline anything) refused nothing the pages use.
    assert not [m for m in console if "Content Security Policy" in m], console
