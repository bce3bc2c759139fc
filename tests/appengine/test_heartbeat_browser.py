"""A real browser reads an install's status page and its SVG charts, served by gunicorn."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from appengine.models import read_token
from tests.appengine.browser import chromium_page
from tests.appengine.heartbeat_helpers import machine, summary
from tests.conftest import require
from vulcano import cloudconfig
from vulcano.heartbeat import MachineHealth
from vulcano.lab.installer import InstallerServer, installer_server
from vulcano.lab.services import DatastoreEmulator
from vulcano.lab.sshkeys import ed25519_line


@pytest.fixture
def live_installer(datastore: DatastoreEmulator, tmp_path: Path) -> Iterator[InstallerServer]:
    extra = {"VULCANO_HEARTBEATS_PER_INSTALL_PER_MINUTE": "1000"}
    with installer_server(datastore, tmp_path / "gunicorn.log", env_extra=extra) as server:
        yield server


@pytest.fixture
def page(tmp_path: Path) -> Iterator[object]:
    require(shutil.which("cloud-init") is not None, "needs Debian's cloud-init")
    with chromium_page(tmp_path / "chromium-profile") as page:
        yield page


@pytest.mark.slow
def test_browser_reads_the_status_page_and_its_charts(
    live_installer: InstallerServer, page: object
) -> None:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    failed: list[str] = []
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    page.goto(live_installer.url + "/")
    page.fill("#cluster_name", "prod")
    page.fill("#ssh_keys", ed25519_line("alice@laptop"))
    page.select_option("#flavour", "cloud-init")
    page.fill("#image", "ghcr.io/vulcano/provisioner:2.0")
    page.fill("#size", "3")
    page.click("#generate")
    page.wait_for_selector("#document")
    manage = page.inner_text("#token")

    # The provisioning machine's view: the secret from the served document, then heartbeats.
    served = requests.get(f"{live_installer.url}/cloud-config/{read_token(manage)}", timeout=10)
    files = {f["path"]: f["content"] for f in yaml.safe_load(served.text)["write_files"]}
    secret = files[cloudconfig.REPORT_TOKEN_HOST_PATH]
    now = time.time()
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {secret}"
        for seq in range(1, 41):
            machines = [machine(i) for i in range(seq % 3 + 2)]
            if seq == 40:
                machines += [machine(8, MachineHealth.DOWN), machine(9, MachineHealth.LATE)]
                machines += [machine(7, MachineHealth.DECOMMISSIONED, hostname="retired")]
            sent = summary(seq, at=now - 60 * (40 - seq), machines=machines)
            answer = session.post(
                f"{live_installer.url}/api/heartbeat", data=sent.to_json(), timeout=10
            )
            assert answer.status_code == 200, answer.text

    page.click("#status-link")
    page.wait_for_selector("#cluster-state")
    assert page.get_attribute("#cluster-state", "data-state") == "reporting"
    assert page.inner_text("#count-up") == "3"
    assert page.inner_text("#count-down") == "1"
    assert page.inner_text("#count-late") == "1"
    assert "retired" in page.inner_text("#decommissioned")
    assert "retired" not in page.inner_text("#machines")
    for metric in ("machines_up", "units_running", "load", "cpu"):
        line = page.locator(f"#chart-{metric} polyline.mean").first
        box = line.bounding_box()
        assert box is not None and box["width"] > 50, metric  # 40 minutes of a 6-hour axis
    band = page.locator("#chart-machines_up polygon.band").first.bounding_box()
    assert band is not None and band["height"] > 5  # machines up ranged from 2 to 4

    page.click("a.tier >> text=30d")
    page.wait_for_selector("#tier-current")
    assert page.inner_text("#tier-current") == "30d"
    assert page.locator("#chart-cpu svg").is_visible()
    # no CSP refusal, no broken resource (browsers ask for a favicon the installer has not)
    assert [u for u in failed if not u.endswith("/favicon.ico")] == []
    assert len([p for p in problems if "404" not in p]) == 0

    log = live_installer.log()
    assert "POST /api/heartbeat" in log
    assert secret.split(".")[1] not in log and read_token(manage) not in log
