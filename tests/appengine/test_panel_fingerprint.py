"""The panel's fingerprint on the hosted page: heartbeats carry it, the installer checks
its form, keeps it with the install in Datastore (the emulator), and the page shows it."""

from __future__ import annotations

import dataclasses
import json

from flask import Flask
from flask.testing import FlaskClient

from appengine import panel_report
from appengine.models import Install
from tests.appengine.heartbeat_helpers import post, reporting_install, snapshot, summary
from vulcano.heartbeat import PanelSummary

FINGERPRINT = ":".join(f"{n:02X}" for n in range(0, 256, 8))
URL = "https://203.0.113.7:8080"


def kept(app: Flask, manage: str) -> tuple[str | None, str | None]:
    with app.extensions["ndb_client"].context():
        install = Install.get_by_token(manage)
        return install.panel_url, install.panel_fingerprint


def test_the_reported_fingerprint_is_kept_and_shown_beside_the_panels_address(
    app: Flask, client: FlaskClient
) -> None:
    manage, secret = reporting_install(client)
    before = client.get(f"/installs/{manage}").text
    assert "appear here once the" in before and 'id="panel-fingerprint"' not in before
    sent = dataclasses.replace(summary(1), panel=PanelSummary(URL, FINGERPRINT.lower()))
    answer = post(client, secret, sent)
    assert answer.status_code == 200, answer.text
    assert kept(app, manage) == (URL, FINGERPRINT)  # upper case, as openssl prints it
    page = client.get(f"/installs/{manage}").text
    assert f'<code id="panel-fingerprint">{FINGERPRINT}</code>' in page
    assert f'<a id="panel-url" href="{URL}">{URL}</a>' in page
    assert "compare its SHA-256 fingerprint" in " ".join(page.split())


def test_every_stored_heartbeat_keeps_the_panel(app: Flask) -> None:
    assert app.extensions["vulcano.summary_hooks"].count(panel_report.remember_panel) == 1


def test_a_new_certificate_replaces_the_kept_fingerprint(app: Flask, client: FlaskClient) -> None:
    manage, secret = reporting_install(client)
    post(client, secret, dataclasses.replace(summary(1), panel=PanelSummary(URL, FINGERPRINT)))
    renewed = ":".join(["AB"] * 32)
    post(client, secret, dataclasses.replace(summary(2), panel=PanelSummary(URL, renewed)))
    assert kept(app, manage) == (URL, renewed)
    # a summary that says nothing of the panel leaves the kept one alone
    assert post(client, secret, summary(3)).status_code == 200
    assert kept(app, manage) == (URL, renewed)


def test_a_plain_http_panel_is_shown_as_reachable_through_a_tunnel(
    client: FlaskClient,
) -> None:
    manage, secret = reporting_install(client)
    panel = PanelSummary("http://127.0.0.1:8080")
    assert post(client, secret, dataclasses.replace(summary(1), panel=panel)).status_code == 200
    page = client.get(f"/installs/{manage}").text
    assert "SSH tunnel" in page and 'id="panel-fingerprint"' not in page


BAD_PANELS = [
    ({"url": URL, "fingerprint": FINGERPRINT[:-3]}, "panel.fingerprint"),
    ({"url": URL, "fingerprint": FINGERPRINT.replace(":", "")}, "panel.fingerprint"),
    ({"url": URL, "fingerprint": FINGERPRINT[:-2] + "ZZ"}, "panel.fingerprint"),
    ({"url": URL, "fingerprint": 42}, "panel.fingerprint"),
    ({"url": URL}, "panel.fingerprint"),  # https without one
    ({"url": "javascript:alert(1)", "fingerprint": FINGERPRINT}, "panel.url"),
    ({"url": URL + '/"><script>', "fingerprint": FINGERPRINT}, "panel.url"),
    ({"url": URL, "fingerprint": FINGERPRINT, "extra": 1}, "panel.extra"),
    ("https://x", "panel"),
]


def test_a_malformed_panel_is_refused_naming_the_field_and_stores_nothing(
    app: Flask, client: FlaskClient
) -> None:
    manage, secret = reporting_install(client)  # one install: each makes one (a few seconds)
    before = snapshot(app)
    for panel, field in BAD_PANELS:
        body = json.loads(summary(1).to_json())
        body["panel"] = panel
        answer = post(client, secret, json.dumps(body))
        assert answer.status_code == 400, (panel, answer.text)
        assert answer.get_json()["field"] == field, panel
    assert snapshot(app) == before
    assert kept(app, manage) == (None, None)
