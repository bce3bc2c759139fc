"""Issue 18's proof: a browser logs in to the panel over its HTTPS, having checked the
certificate against the fingerprint the hosted install page shows.

The real chain on loopback: the installer under gunicorn on the Datastore emulator;
`vulcano serve` (HTTPS, the certificate it made) whose relay reports the panel to that
installer with every heartbeat; headless Chromium reading the install page. The
certificate the panel presents is fetched with ``ssl`` and only its key is pinned in
Chromium (``--ignore-certificate-errors-spki-list``): the page's fingerprint must be that
certificate's, and Chromium refuses the panel if it presents any other key.
"""

from __future__ import annotations

import hashlib
import html
import re
import socket
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from flask.testing import FlaskClient

from tests.appengine.browser import chromium_page
from tests.appengine.heartbeat_helpers import reporting_install
from tests.container.panel.served import served_panel
from vulcano.lab.installer import installer_server
from vulcano.lab.poll import wait_for
from vulcano.lab.services import DatastoreEmulator

PASSWORD = "https-browser-password"
_SHOWN = re.compile(r'<code id="panel-fingerprint">([0-9A-F:]+)</code>')


def presented_certificate(url: str) -> bytes:
    """The DER certificate the server at ``url`` presents (read to compare, not trusted)."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((parts.hostname, parts.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=parts.hostname) as conn,
    ):
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return der


def colon_sha256(der: bytes) -> str:
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_browser_checks_the_hosted_fingerprint_then_logs_in_to_the_panel_over_https(
    datastore: DatastoreEmulator, client: FlaskClient, tmp_path: Path
) -> None:
    from playwright.sync_api import Page

    manage, secret = reporting_install(client)
    token_file = tmp_path / "report-token"
    token_file.write_text(secret)
    token_file.chmod(0o600)
    with installer_server(datastore, tmp_path / "installer.log", threads=4) as installer:
        env = {
            "VULCANO_ADMIN_PASSWORD": PASSWORD,
            "VULCANO_INSTALLER_URL": installer.url,
            "VULCANO_REPORT_TOKEN_FILE": str(token_file),
            "VULCANO_RELAY_INTERVAL": "1",
        }
        manage_url = f"{installer.url}/installs/{manage}"

        def shown() -> str | None:
            found = _SHOWN.search(requests.get(manage_url, timeout=10).text)
            return found.group(1) if found else None

        with served_panel(tmp_path / "state", tmp_path / "serve.log", env, https=True) as panel:
            wait_for(shown, 60, "the panel's fingerprint on the install page", 0.5)
            der = presented_certificate(panel.url)
            pinned = tmp_path / "presented.pem"
            pinned.write_text(ssl.DER_cert_to_PEM_cert(der))
            with chromium_page(tmp_path / "chromium-profile", pinned) as page:
                assert isinstance(page, Page)
                page.goto(manage_url)
                on_page = page.inner_text("#panel-fingerprint")
                panel_url = html.unescape(page.get_attribute("#panel-url", "href") or "")
                assert "compare its SHA-256 fingerprint" in page.inner_text("#panel-check")
                # what the user does: the browser's certificate is the one the page names
                assert on_page == colon_sha256(der)
                assert panel_url == panel.url
                page.goto(panel_url + "/clusters")
                assert "/login?next=" in page.url
                page.fill("#password", PASSWORD)
                page.click("#login")
                page.wait_for_url("**/clusters")
                assert page.url.startswith("https://")
                assert page.locator("#logout").count() == 1  # logged in
                cookies = page.context.cookies(panel_url)
                assert any(c["name"] == "vulcano_panel" and c["secure"] for c in cookies)
        assert "certificate SHA-256 fingerprint " + on_page in panel.log()
