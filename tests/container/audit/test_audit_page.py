"""The panel's audit page: the same entries as `vulcano audit`, diffs included and
escaped, filtered by unit or machine; a bad query is a 400 naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from container.panel import create_app
from container.services.audit import Actor, AuditLog, unit_diff
from container.services.provisioning import ProvisioningSettings
from container.store import open_store

ALICE = Actor("alice", "panel")
BOB = Actor("bob@ops", "cli")


@pytest.fixture
def panel(state_dir: Path) -> FlaskClient:
    settings = ProvisioningSettings(cluster_name="prod", cluster_size=3, state_dir=state_dir)
    return create_app({"TESTING": True}, settings=settings).test_client()


@pytest.fixture
def log(panel: FlaskClient, state_dir: Path) -> AuditLog:
    return AuditLog(open_store(state_dir))


def test_the_page_lists_who_did_what_with_the_diff(panel: FlaskClient, log: AuditLog) -> None:
    text = "[Service]\nExecStart=/bin/echo <b>hi</b>\n"
    log.record(BOB, "submit", "db.service", diff=unit_diff("db.service", None, text))
    log.record(ALICE, "start", "db.service", detail="inactive -> launched")
    page = panel.get("/audit")
    assert page.status_code == 200
    html = page.text
    assert html.index("bob@ops") < html.index("alice")  # oldest first
    assert "<td>submit</td>" in html and "inactive -&gt; launched" in html
    assert "+ExecStart=/bin/echo &lt;b&gt;hi&lt;/b&gt;" in html  # escaped, never markup
    assert "<b>hi</b>" not in html


def test_the_page_filters_by_unit_and_machine(panel: FlaskClient, log: AuditLog) -> None:
    log.record(BOB, "start", "web@1.service")
    log.record(BOB, "start", "db.service")
    log.record(ALICE, "machine-remove", "m1")
    by_unit = panel.get("/audit?unit=web@.service").text
    assert "web@1.service" in by_unit and "db.service" not in by_unit
    by_machine = panel.get("/audit?machine=m1").text
    assert "machine-remove" in by_machine and "web@1.service" not in by_machine
    assert "No changes recorded for nosuch" in panel.get("/audit?machine=nosuch").text


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=lots", "limit"),
        ("unit=bad name!", "unit"),
        ("unit=a&machine=b", "unit, machine"),
    ],
)
def test_a_bad_query_is_a_400_naming_the_field(
    panel: FlaskClient, log: AuditLog, query: str, field: str
) -> None:
    page = panel.get(f"/audit?{query}")
    assert page.status_code == 400 and f"{field}:" in page.text
