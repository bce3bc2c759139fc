"""A balancer going ok → stale → ok in the heartbeats an install receives: one stale alert
with its error and one recovery, by mail and webhook, none for a repeat; the status page
lists the balancers with the stale one marked. The real app, the Datastore emulator, a
real SMTP sink and a real webhook receiver."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appengine.alerts_engine import AlertRecord
from appengine.models import Install, read_token
from tests.appengine.alert_sinks import MailSink, Webhook, smtp_sink, webhook_receiver
from tests.appengine.conftest import csrf_token
from tests.appengine.heartbeat_helpers import machine, post, reporting_install, summary
from vulcano.heartbeat import BalancerSummary, ClusterSummary

ERROR = 'nginx: [emerg] unknown directive "vulcano_no_such_directive" in lb.conf:12'


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


def heartbeat(seq: int, lb1: str) -> ClusterSummary:
    """Two machines, each running balancer ``web@``; the one on node-1 stands as ``lb1``."""
    machines = [machine(0), machine(1)]
    base = summary(seq, machines=machines)
    balancers = [
        BalancerSummary("web@", machines[0].machine_id, "ok", "", 3),
        BalancerSummary("web@", machines[1].machine_id, lb1, ERROR if lb1 == "stale" else "", 3),
    ]
    return ClusterSummary(
        base.cluster, base.seq, base.at, base.interval, base.machines, base.units,
        balancers=balancers,
    )  # fmt: skip


def rows(page: str) -> list[tuple[str, str]]:
    return re.findall(r'data-balancer="([^"]+)" data-status="([a-z]+)"', page)


def test_a_stale_balancer_alerts_once_recovers_once_and_shows_on_the_status_page(
    app: Flask, client: FlaskClient, mail: MailSink, hook: Webhook
) -> None:
    manage, secret = reporting_install(client)
    data = {
        "csrf_token": csrf_token(client, f"/installs/{manage}"),
        "emails": "ops@example.com",
        "webhooks": hook.url,
    }
    assert client.post(f"/installs/{manage}/alerts", data=data).status_code == 303
    subject = "web@/" + machine(1).machine_id
    status_page = f"/status/{read_token(manage)}"

    assert post(client, secret, heartbeat(1, "ok")).status_code == 200
    page = client.get(status_page).text
    assert 'id="balancers"' in page and "<strong>stale</strong>" not in page
    assert sorted(s for _, s in rows(page)) == ["ok", "ok"]

    assert post(client, secret, heartbeat(2, "stale")).status_code == 200
    assert post(client, secret, heartbeat(2, "stale")).status_code == 409  # a replay
    assert post(client, secret, heartbeat(3, "stale")).status_code == 200  # still stale
    page = client.get(status_page).text
    assert rows(page)[0] == (subject, "stale")  # stale ones first
    assert "<strong>stale</strong>" in page and "vulcano_no_such_directive" in page
    assert "node-1" in page  # by hostname

    assert post(client, secret, heartbeat(4, "ok")).status_code == 200
    assert post(client, secret, heartbeat(5, "ok")).status_code == 200

    assert hook.changes == [f"balancer-stale {subject}", f"balancer-recovered {subject}"]
    stale, back = (b["alert"] for b in hook.bodies)
    assert (stale["was"], stale["now"], stale["detail"], stale["recovery"]) == (
        "ok", "stale", ERROR, False
    )  # fmt: skip
    assert (back["was"], back["now"], back["detail"], back["recovery"]) == ("stale", "ok", "", True)
    assert mail.subjects == [
        f"[vulcano] STALE: balancer {subject} of cluster prod",
        f"[vulcano] RECOVERED: balancer {subject} of cluster prod",
    ]
    body = mail.messages[0].get_body()
    assert body is not None and ERROR in body.get_content()
    with app.extensions["ndb_client"].context():
        install = Install.get_by_token(manage)
        assert install is not None
        records = AlertRecord.for_install(install.key)
        assert [(r.change, r.delivered) for r in records] == [
            ("balancer-stale", True),
            ("balancer-recovered", True),
        ]
        assert records[0].transition().detail == ERROR
    assert "<strong>stale</strong>" not in client.get(status_page).text


def test_a_heartbeat_without_balancers_shows_no_balancer_table(client: FlaskClient) -> None:
    manage, secret = reporting_install(client)
    assert post(client, secret, summary(1).to_json()).status_code == 200
    assert 'id="balancers"' not in client.get(f"/status/{read_token(manage)}").text
