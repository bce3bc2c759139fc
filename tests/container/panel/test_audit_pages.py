"""The panel's changes reach the audit log as the admin at the client's address, and the
audit page shows every change ."""

from __future__ import annotations

import io

import pytest

from container.store import Store
from tests.container.panel.conftest import Browser

UNIT = "[Service]\nExecStart=/bin/true\n"


def upload(admin: Browser, name: str, text: str) -> int:
    answer = admin.post(
        "/clusters/lab/units/upload",
        {"unit_file": (io.BytesIO(text.encode()), name)},
        content_type="multipart/form-data",
    )
    return answer.status_code


def test_a_change_made_in_the_panel_is_audited_as_the_admin_at_the_address(
    admin: Browser, lab_cluster: str, store: Store
) -> None:
    from container.services.audit import AuditLog

    assert upload(admin, "db.service", UNIT) == 302
    assert admin.post(
        "/clusters/lab/units/action", {"unit": "db.service", "action": "destroy"}
    ).status_code == 302  # fmt: skip
    entries = AuditLog(store).entries()
    assert [(e.action, e.target) for e in entries] == [
        ("submit", "db.service"),
        ("destroy", "db.service"),
    ]
    assert {(e.actor, e.face, e.cluster) for e in entries} == {("admin@127.0.0.1", "panel", "lab")}
    assert "+ExecStart=/bin/true" in entries[0].diff


def test_the_audit_page_shows_who_did_what_with_the_diff(admin: Browser, lab_cluster: str) -> None:
    upload(admin, "db.service", UNIT)
    upload(admin, "web.service", UNIT)
    page = admin.get("/audit").text
    assert page.index("<code>web.service</code>") < page.index("<code>db.service</code>")
    assert 'admin@127.0.0.1 <span class="muted">(panel)</span>' in page
    assert "+ExecStart=/bin/true" in page
    only = admin.get("/audit?unit=db.service").text
    assert "<code>db.service</code>" in only
    assert "<code>web.service</code>" not in only


@pytest.mark.parametrize("limit", ["x", "0", "999999"])
def test_a_bad_limit_is_refused_naming_it(admin: Browser, limit: str) -> None:
    answer = admin.get(f"/audit?limit={limit}")
    assert answer.status_code == 400
    assert 'data-field="limit"' in answer.text


def test_the_audit_page_needs_a_login(browser: Browser) -> None:
    assert browser.get("/audit").status_code == 302
