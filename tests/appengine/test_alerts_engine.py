"""on_summary and the sweep, on the real emulator, to a real SMTP sink and webhook."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from google.cloud import ndb

from appengine import policy
from appengine.alert_delivery import public_host
from appengine.alerts_engine import (
    AlertRecord,
    AlertSettings,
    delete_for_install,
    on_summary,
    retry_undelivered,
    sweep,
)
from appengine.models import Install
from tests.appengine.alert_sinks import MailSink, Webhook, smtp_sink, webhook_receiver
from tests.appengine.conftest import INSTALL_FIELDS
from vulcano.heartbeat import ClusterSummary, MachineHealth, MachineSummary, UnitSummary

UP, DOWN, GONE = MachineHealth.UP, MachineHealth.DOWN, MachineHealth.DECOMMISSIONED


def summary(seq: int, m1: MachineHealth, web: str = "active") -> ClusterSummary:
    now = time.time()
    return ClusterSummary(
        "prod",
        seq,
        now,
        60.0,
        machines=[MachineSummary("m1", m1, now), MachineSummary("m2", UP, now)],
        units=[UnitSummary("web", "m2", web)],
    )


@pytest.fixture
def mail() -> Iterator[MailSink]:
    with smtp_sink() as sink:
        yield sink


@pytest.fixture
def hook() -> Iterator[Webhook]:
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
def config(mail: MailSink) -> dict[str, Any]:
    return {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": mail.port,
        "SMTP_FROM": "alerts@vulcano.test",
        "ALERT_WEBHOOK_ALLOW_PRIVATE": True,  # the receiver is on loopback
    }


@pytest.fixture
def install(ndb_context: ndb.Context, hook: Webhook) -> Install:
    stored, _ = Install.create(**INSTALL_FIELDS)
    AlertSettings(
        key=AlertSettings.key_for(stored.key), emails=["ops@example.com"], webhooks=[hook.url]
    ).put()
    return stored


def test_one_alert_per_transition_none_for_a_repeat_and_one_recovery(
    install: Install, config: dict[str, Any], mail: MailSink, hook: Webhook
) -> None:
    s1, s2, s3, s4 = summary(1, UP), summary(2, DOWN), summary(3, DOWN), summary(4, UP)
    assert on_summary(install, None, s1, config) == []
    assert [t.change for t in on_summary(install, s1, s2, config)] == ["machine-down"]
    assert on_summary(install, s1, s2, config) == []  # the same seq again: recorded already
    assert on_summary(install, s2, s3, config) == []  # still down: no new flip
    assert [t.change for t in on_summary(install, s3, s4, config)] == ["machine-up"]
    assert hook.changes == ["machine-down m1", "machine-up m1"]
    assert len(mail.subjects) == 2
    assert "DOWN: machine m1 of cluster prod" in mail.subjects[0]
    assert "RECOVERED: machine m1" in mail.subjects[1]
    assert all(r.delivered for r in AlertRecord.for_install(install.key))


def test_a_failed_unit_alerts_once_and_recovers_once(
    install: Install, config: dict[str, Any], hook: Webhook
) -> None:
    on_summary(install, None, summary(1, UP), config)
    on_summary(install, summary(1, UP), summary(2, UP, "failed"), config)
    on_summary(install, summary(2, UP, "failed"), summary(3, UP, "failed"), config)
    on_summary(install, summary(3, UP, "failed"), summary(4, UP, "active"), config)
    assert hook.changes == ["unit-failed web", "unit-recovered web"]


def test_a_decommissioned_machine_never_alerts(
    install: Install, config: dict[str, Any], mail: MailSink, hook: Webhook
) -> None:
    on_summary(install, None, summary(1, UP), config)
    on_summary(install, summary(1, UP), summary(2, GONE), config)
    on_summary(install, summary(2, GONE), summary(3, GONE), config)
    assert hook.bodies == [] and mail.messages == []


def test_a_silent_cluster_turns_unreachable_once_and_recovers_once(
    install: Install, config: dict[str, Any], mail: MailSink, hook: Webhook
) -> None:
    on_summary(install, None, summary(1, UP), config)
    assert sweep(time.time() + 170, config) == []  # within three intervals
    later = time.time() + 181
    assert [t.change for t in sweep(later, config)] == ["cluster-unreachable"]
    assert sweep(later + 600, config) == []
    assert [t.change for t in on_summary(install, summary(1, UP), summary(2, UP), config)] == [
        "cluster-reporting"
    ]
    assert hook.changes == ["cluster-unreachable prod", "cluster-reporting prod"]
    assert len(mail.messages) == 2


def test_two_workers_given_the_same_summary_send_its_alert_once(
    app: Flask, install: Install, config: dict[str, Any], hook: Webhook
) -> None:
    on_summary(install, None, summary(1, UP), config)
    s1, s2 = summary(1, UP), summary(2, DOWN)
    client = app.extensions["ndb_client"]
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with client.context():
                on_summary(install, s1, s2, config)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert hook.changes == ["machine-down m1"]


def test_an_alert_a_webhook_missed_is_sent_again_there_only_and_only_once(
    install: Install, config: dict[str, Any], mail: MailSink, hook: Webhook
) -> None:
    on_summary(install, None, summary(1, UP), config)
    hook.status = 500
    on_summary(install, summary(1, UP), summary(2, DOWN), config)
    (record,) = AlertRecord.for_install(install.key)
    assert not record.delivered and record.pending == [hook.url]
    assert len(mail.messages) == 1 and len(hook.bodies) == policy.WEBHOOK_ATTEMPTS

    hook.status = 200
    assert retry_undelivered(time.time() + 10, config) == 0  # too soon after its try
    later = time.time() + policy.ALERT_RETRY_AFTER + 1
    assert retry_undelivered(later, config) == 1
    assert retry_undelivered(later + policy.ALERT_RETRY_AFTER + 1, config) == 0
    assert len(mail.messages) == 1  # the address had it already
    assert hook.changes[-1] == "machine-down m1" and hook.bodies[-1]["test"] is False
    (record,) = AlertRecord.for_install(install.key)
    assert record.delivered and record.pending == []


def test_a_webhook_on_a_private_address_is_refused_unless_allowed(
    install: Install, config: dict[str, Any], mail: MailSink, hook: Webhook
) -> None:
    config["ALERT_WEBHOOK_ALLOW_PRIVATE"] = False
    on_summary(install, None, summary(1, UP), config)
    on_summary(install, summary(1, UP), summary(2, DOWN), config)
    assert hook.bodies == [] and len(mail.messages) == 1
    (record,) = AlertRecord.for_install(install.key)
    assert record.pending == [hook.url]
    assert not public_host("http://169.254.169.254/computeMetadata/v1/")
    assert not public_host("http://localhost:8080/")
    assert not public_host("http://10.0.0.1/")


def test_a_deleted_install_never_alerts_again(
    install: Install, config: dict[str, Any], mail: MailSink, hook: Webhook
) -> None:
    on_summary(install, None, summary(1, UP), config)
    install.key.delete()
    assert sweep(time.time() + 1000, config) == []
    assert hook.bodies == [] and mail.messages == []
    assert delete_for_install(install.key) == 2  # its state and its settings
    assert AlertSettings.of(install.key).destinations() == []
