"""A real browser on the real server: headless Chromium on `vulcano serve` (gunicorn),
driving a simulated cluster whose machines really run the unit it starts."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from container.store import open_store
from tests.appengine.browser import chromium_page
from tests.container.panel.conftest import add_cluster
from tests.container.panel.lab import Lab
from tests.container.panel.served import ServedPanel, served_panel
from vulcano.lab.services import Etcd

PASSWORD = "browser-test-password"
HELLO = (
    "[Unit]\nDescription=says hello\n\n[Service]\n"
    "ExecStart=/bin/sh -c 'echo hello from the browser test; exec sleep 1000' MARK\n"
    "TimeoutStopSec=3\n"
)
WEB = (
    "[Service]\nExecStart=/bin/sh -c 'echo web %i says hello; exec sleep 1000' MARK-%n\n"
    "TimeoutStopSec=3\n\n[X-Fleet]\nConflicts=web@*\n"
)
# Where the screenshots are kept for a person to look at (the test's tmp dir otherwise).
SHOTS_VAR = "VULCANO_PANEL_SCREENSHOTS"


@pytest.fixture
def live_panel(tmp_path: Path, etcd: Etcd) -> Iterator[ServedPanel]:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    add_cluster(open_store(state), "lab", etcd.endpoint, size=2)
    env = {"VULCANO_ADMIN_PASSWORD": PASSWORD}
    with served_panel(state, tmp_path / "serve.log", env) as panel:
        yield panel


@pytest.fixture
def page(tmp_path: Path) -> Iterator[object]:
    with chromium_page(tmp_path / "chromium-profile") as page:
        yield page


def _shots(tmp_path: Path) -> Path:
    shots = Path(os.environ.get(SHOTS_VAR) or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    return shots


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_browser_logs_in_starts_a_unit_sees_it_running_and_reads_its_log(
    live_panel: ServedPanel, lab: Lab, page: object, tmp_path: Path
) -> None:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    shots = _shots(tmp_path)
    page.goto(live_panel.url + "/clusters/lab/units")
    assert "/login?next=" in page.url
    page.fill("#password", "wrong")
    page.click("#login")
    assert "Wrong password." in page.inner_text("#error")
    page.fill("#password", PASSWORD)
    page.screenshot(path=str(shots / "login.png"), full_page=True)
    page.click("#login")
    page.wait_for_url("**/clusters/lab/units")

    page.click("text=Clusters")
    page.wait_for_selector("#clusters")
    page.screenshot(path=str(shots / "clusters.png"), full_page=True)
    page.click('#clusters a[href="/clusters/lab"]')
    assert page.inner_text("#machine-count") == "2"
    page.click("text=Machines")
    page.wait_for_selector("#machines")
    assert page.locator("#machines tr[data-machine]").count() == 2
    page.screenshot(path=str(shots / "machines.png"), full_page=True)

    page.click("text=Units")
    page.set_input_files(
        "#unit_file",
        files=[{"name": "hello.service", "mimeType": "text/plain",
                "buffer": lab.unit(HELLO).encode()}],
    )  # fmt: skip
    assert page.is_checked("#start")
    page.click("#submit-unit")
    assert "submit and start hello.service: asked by admin@127.0.0.1 (panel)" in page.inner_text(
        ".flash"
    )
    active = '#unit-states tr[data-unit="hello.service"] .state.active'
    deadline = time.monotonic() + 30
    while not page.locator(active).count():
        assert time.monotonic() < deadline, "hello.service never showed active"
        time.sleep(0.5)
        page.click("#refresh")
    assert page.inner_text('#unit-files tr[data-unit="hello.service"] .state') == "launched"
    page.screenshot(path=str(shots / "units.png"), full_page=True)

    page.click('#unit-files tr[data-unit="hello.service"] a:text("log")')
    journal = 'pre.journal[data-unit="hello.service"]'
    deadline = time.monotonic() + 20
    while "hello from the browser test" not in page.inner_text(journal):
        assert time.monotonic() < deadline, "the unit's line never showed in its log"
        time.sleep(0.5)
        page.click("#refresh")
    page.screenshot(path=str(shots / "log.png"), full_page=True)

    # a template, two instances of it (one per machine), their logs on one page
    page.click("text=Units")
    page.set_input_files(
        "#unit_file",
        files=[{"name": "web@.service", "mimeType": "text/plain",
                "buffer": lab.unit(WEB).encode()}],
    )  # fmt: skip
    page.click("#submit-unit")
    page.fill('input[aria-label="instances of web@.service"]', "1 2")
    page.click('#unit-files tr[data-unit="web@.service"] button:text("Start instances")')
    assert "start web@1.service, web@2.service" in page.inner_text(".flash")
    deadline = time.monotonic() + 30
    running = '#unit-states tr[data-unit^="web@"] .state.active'
    while page.locator(running).count() < 2:
        assert time.monotonic() < deadline, "the two instances never both showed active"
        time.sleep(0.5)
        page.click("#refresh")
    page.screenshot(path=str(shots / "units-instances.png"), full_page=True)
    page.click('#unit-files tr[data-unit="web@.service"] a:text("logs of all")')
    deadline = time.monotonic() + 20
    while not all(
        f"web {i} says hello" in page.inner_text(f'pre.journal[data-unit="web@{i}.service"]')
        for i in (1, 2)
    ):
        assert time.monotonic() < deadline, "both instances' lines never showed"
        time.sleep(0.5)
        page.click("#refresh")
    page.screenshot(path=str(shots / "instances-log.png"), full_page=True)

    page.click("#logout")
    page.goto(live_panel.url + "/clusters/lab/units")
    assert "/login?next=" in page.url
    assert PASSWORD not in live_panel.log()
