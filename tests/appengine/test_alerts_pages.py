"""Alert settings and the test button on the manage page, the container's test-alert
API and the sweep's cron guard, through the app, to a real SMTP sink and webhook."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appengine.alerts_engine import AlertSettings, on_summary
from appengine.models import Install, provisioner_token, read_token
from tests.appengine.alert_sinks import MailSink, Webhook, smtp_sink, webhook_receiver
from tests.appengine.conftest import csrf_token
from tests.appengine.test_installs import create


@pytest.fixture
def mail(app: Flask) -> Iterator[MailSink]:
    with smtp_sink() as sink:
        app.config.update(
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=sink.port,
            SMTP_FROM="a@vulcano.test",
            ALERT_WEBHOOK_ALLOW_PRIVATE=True,  # the receiver is on loopback
        )
        yield sink


@pytest.fixture
def hook() -> Iterator[Webhook]:
    with webhook_receiver() as receiver:
        yield receiver


def _save(client: FlaskClient, token: str, emails: str, webhooks: str) -> int:
    data = {
        "csrf_token": csrf_token(client, f"/installs/{token}"),
        "emails": emails,
        "webhooks": webhooks,
    }
    return client.post(f"/installs/{token}/alerts", data=data).status_code


def test_the_manage_page_saves_destinations_and_sends_a_test_alert(
    app: Flask, client: FlaskClient, mail: MailSink, hook: Webhook
) -> None:
    token = create(client)
    page = client.get(f"/installs/{token}")
    assert 'id="alerts-form"' in page.text and 'id="alerts-test"' in page.text
    assert _save(client, token, "ops@example.com, oncall@example.com", hook.url) == 303
    with app.extensions["ndb_client"].context():
        install = Install.get_by_token(token)
        assert install is not None
        settings = AlertSettings.of(install.key)
        assert settings.emails == ["ops@example.com", "oncall@example.com"]
        assert settings.webhooks == [hook.url]
    assert hook.url in client.get(f"/installs/{token}").text

    data = {"csrf_token": csrf_token(client, f"/installs/{token}")}
    answer = client.post(f"/installs/{token}/alerts/test", data=data, follow_redirects=True)
    assert "Test alert: 3 delivered, 0 failed." in answer.text
    assert len(mail.messages) == 1 and mail.subjects[0].startswith("[test] ")
    assert mail.messages[0]["To"] == "ops@example.com, oncall@example.com"
    assert [b["test"] for b in hook.bodies] == [True]


@pytest.mark.parametrize(
    ("emails", "webhooks", "field"),
    [
        ("not-an-address", "", "emails"),
        ("", "ftp://example.com/hook", "webhooks"),
        ("", "https://", "webhooks"),
        (" ".join(f"a{i}@example.com" for i in range(6)), "", "alerts"),
    ],
)
def test_bad_destinations_are_400_naming_the_field(
    client: FlaskClient, emails: str, webhooks: str, field: str
) -> None:
    token = create(client)
    data = {
        "csrf_token": csrf_token(client, f"/installs/{token}"),
        "emails": emails,
        "webhooks": webhooks,
    }
    answer = client.post(f"/installs/{token}/alerts", data=data)
    assert answer.status_code == 400 and f"{field}:" in answer.text


def test_alert_forms_need_their_csrf_token_and_a_real_install(client: FlaskClient) -> None:
    token = create(client)
    assert (
        client.post(f"/installs/{token}/alerts", data={"emails": "a@example.com"}).status_code
        == 400
    )
    assert client.post(f"/installs/{token}/alerts/test", data={}).status_code == 400
    data = {"csrf_token": csrf_token(client), "emails": ""}
    assert client.post("/installs/" + "x" * 43 + "/alerts", data=data).status_code == 404


def test_the_container_sends_a_test_alert_with_its_provisioner_token(
    client: FlaskClient, mail: MailSink, hook: Webhook
) -> None:
    token = create(client)
    _save(client, token, "ops@example.com", hook.url)
    bearer = {"Authorization": f"Bearer {provisioner_token(read_token(token))}"}
    answer = client.post("/api/alerts/test", headers=bearer)
    assert answer.status_code == 200 and answer.json == {"sent": 2, "failed": 0}
    assert len(mail.messages) == 1 and len(hook.bodies) == 1
    forged = client.post("/api/alerts/test", headers={"Authorization": "Bearer " + "y" * 43})
    assert forged.status_code == 401
    assert client.post("/api/alerts/test").status_code == 401
    assert len(hook.bodies) == 1


def test_the_sweep_answers_app_engine_cron_only(client: FlaskClient) -> None:
    for headers in ({}, {"X-Appengine-Cron": "false"}):
        assert client.get("/cron/heartbeat/sweep", headers=headers).status_code == 403
    answer = client.get("/cron/heartbeat/sweep", headers={"X-Appengine-Cron": "true"})
    assert answer.status_code == 200 and answer.text == "unreachable 0\nretried 0\n"


def test_every_stored_heartbeat_runs_the_alert_engine(app: Flask) -> None:
    # once, beside the other hooks (the panel's fingerprint is kept by one too)
    assert app.extensions["vulcano.summary_hooks"].count(on_summary) == 1


def test_test_alerts_are_bounded_per_install(
    app: Flask, client: FlaskClient, hook: Webhook
) -> None:
    app.config.update(TEST_ALERTS_PER_INSTALL_PER_HOUR=2, ALERT_WEBHOOK_ALLOW_PRIVATE=True)
    token = create(client)
    _save(client, token, "", hook.url)
    bearer = {"Authorization": f"Bearer {provisioner_token(read_token(token))}"}
    assert client.post("/api/alerts/test", headers=bearer).status_code == 200
    data = {"csrf_token": csrf_token(client, f"/installs/{token}")}
    assert client.post(f"/installs/{token}/alerts/test", data=data).status_code == 303
    refused = client.post("/api/alerts/test", headers=bearer)
    assert refused.status_code == 429 and "test alerts: at most 2 per hour" in refused.json["error"]
    assert int(refused.headers["Retry-After"]) > 0
    page = client.post(f"/installs/{token}/alerts/test", data=data)
    assert page.status_code == 429
    assert len(hook.bodies) == 2
