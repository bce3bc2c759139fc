"""`POST /api/heartbeat` against the real Datastore emulator: what is stored, and what is
refused (401 / 409 / 413 / 400 / 429) with nothing written at all."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appengine.heartbeat_api import SUMMARY_HOOKS
from appengine.heartbeat_models import ClusterHeartbeat
from appengine.models import Install, provisioner_token, read_token
from tests.appengine.heartbeat_helpers import (
    machine,
    post,
    reporting_install,
    snapshot,
    summary,
)
from vulcano.heartbeat import MAX_MACHINES, MAX_SUMMARY_BYTES, ClusterSummary


def _installs_and_heartbeats(app: Flask) -> list[tuple[Any, ...]]:
    """Install and ClusterHeartbeat entities (not entities kept under an install's key)."""
    return [p for p in snapshot(app) if len(p) == 2 and p[0] in {"Install", "ClusterHeartbeat"}]


@pytest.fixture
def reporter(client: FlaskClient) -> tuple[str, str]:
    return reporting_install(client)


def stored(app: Flask, manage: str) -> ClusterHeartbeat | None:
    with app.extensions["ndb_client"].context():
        install = Install.get_by_token(manage)
        entity: ClusterHeartbeat | None = ClusterHeartbeat.key_for(install.key).get()
        return entity


def test_an_accepted_heartbeat_is_stored_and_acknowledged(
    app: Flask, client: FlaskClient, reporter: tuple[str, str]
) -> None:
    manage, secret = reporter
    sent = summary(7, machines=5)
    answer = post(client, secret, sent)
    assert answer.status_code == 200, answer.text
    assert answer.get_json() == {"seq": 7, "stored": True}
    assert answer.headers["Cache-Control"] == "no-store"
    entity = stored(app, manage)
    assert entity is not None and entity.seq == 7
    assert entity.latest() == sent
    # the next one replaces it as the latest
    assert post(client, secret, summary(8, machines=2)).status_code == 200
    entity = stored(app, manage)
    assert entity is not None and entity.seq == 8 and len(entity.latest().machines) == 2


FORGED = [
    "Bearer " + "0" * 64 + "." + "A" * 43,  # well formed, no such install
    "Bearer nope",
    "Bearer",
    "Basic Zm9vOmJhcg==",
    "",
]


@pytest.mark.parametrize("header", FORGED)
def test_a_forged_secret_is_refused_and_writes_nothing(
    app: Flask, client: FlaskClient, reporter: tuple[str, str], header: str
) -> None:
    before = snapshot(app)
    answer = client.post(
        "/api/heartbeat", data=summary(1).to_json(), headers={"Authorization": header}
    )
    assert answer.status_code == 401
    assert answer.get_json()["field"] == "Authorization"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert snapshot(app) == before


def test_a_right_install_id_with_a_wrong_secret_gets_the_same_answer(
    app: Flask, client: FlaskClient, reporter: tuple[str, str]
) -> None:
    _, secret = reporter
    install_id, _, part = secret.partition(".")
    wrong_part = f"{install_id}.{part[:-1]}{'B' if part[-1] != 'B' else 'C'}"
    unknown_id = f"{'0' * 64}.{part}"
    before = snapshot(app)
    answers = [post(client, wrong, summary(1)) for wrong in (wrong_part, unknown_id)]
    assert [a.status_code for a in answers] == [401, 401]
    assert answers[0].get_json() == answers[1].get_json()
    assert snapshot(app) == before


def test_the_installs_other_tokens_do_not_report(
    app: Flask, client: FlaskClient, reporter: tuple[str, str]
) -> None:
    manage, _ = reporter
    before = snapshot(app)
    for other in (manage, read_token(manage), provisioner_token(read_token(manage))):
        assert post(client, other, summary(1)).status_code == 401
    assert snapshot(app) == before


def test_a_deleted_install_cannot_report_and_its_heartbeats_are_gone(
    app: Flask, client: FlaskClient, reporter: tuple[str, str]
) -> None:
    from tests.appengine.conftest import csrf_token

    manage, secret = reporter
    assert post(client, secret, summary(1)).status_code == 200
    token = csrf_token(client, f"/installs/{manage}")
    assert client.post(f"/installs/{manage}/delete", data={"csrf_token": token}).status_code == 303
    assert post(client, secret, summary(2)).status_code == 401
    assert _installs_and_heartbeats(app) == []


@pytest.mark.parametrize("replayed", [5, 3, 0])
def test_a_replayed_seq_is_refused_naming_the_last_and_writes_nothing(
    app: Flask, client: FlaskClient, reporter: tuple[str, str], replayed: int
) -> None:
    _, secret = reporter
    assert post(client, secret, summary(5)).status_code == 200
    before = snapshot(app)
    answer = post(client, secret, summary(replayed, machines=9))
    assert answer.status_code == 409
    body = answer.get_json()
    assert body["field"] == "seq" and body["last_seq"] == 5
    assert "last stored seq 5" in body["message"]
    assert snapshot(app) == before


def _oversized_bodies() -> dict[str, dict[str, Any]]:
    big = summary(1, machines=1)
    padded = big.to_json()[:-1] + "," + " " * MAX_SUMMARY_BYTES + "}"
    many = dataclasses.replace(big, machines=[machine(i) for i in range(MAX_MACHINES + 1)])
    return {
        "content-length": {"data": padded},
        "streamed": {
            "input_stream": io.BytesIO(padded.encode()),
            "environ_base": {"wsgi.input_terminated": True},
        },
        "too many machines": {"data": many.to_json()},
    }


@pytest.mark.parametrize("case", list(_oversized_bodies()))
def test_an_oversized_heartbeat_is_refused_and_writes_nothing(
    app: Flask, client: FlaskClient, reporter: tuple[str, str], case: str
) -> None:
    _, secret = reporter
    before = snapshot(app)
    request = _oversized_bodies()[case]
    answer = client.post(
        "/api/heartbeat",
        headers={"Authorization": f"Bearer {secret}"},
        content_type="application/json",
        **request,
    )
    assert answer.status_code == 413, answer.text
    assert answer.get_json()["error"] == "too_large"
    assert snapshot(app) == before


def _malformed() -> list[tuple[str, str]]:
    good = json.loads(summary(1, machines=2).to_json())

    def changed(path: list[Any], value: Any) -> str:
        data = json.loads(json.dumps(good))
        target = data
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        return json.dumps(data)

    return [
        ("{not json", "summary"),
        ("[]", "summary"),
        (changed(["seq"], -1), "seq"),
        (changed(["seq"], "7"), "seq"),
        (changed(["at"], "yesterday"), "at"),
        (changed(["interval"], 0), "interval"),
        (changed(["cluster"], "a b"), "cluster"),
        (changed(["machines", 1, "health"], "sleepy"), "machines[1].health"),
        (changed(["machines", 0, "cpu_percent"], 250), "machines[0].cpu_percent"),
        (changed(["units", 0, "active"], "Running!"), "units[0].active"),
        (changed(["surprise"], 1), "summary.surprise"),
        (changed(["version"], 99), "version"),
    ]


@pytest.mark.parametrize(("body", "field"), _malformed())
def test_a_malformed_heartbeat_is_refused_naming_the_field_and_writes_nothing(
    app: Flask, client: FlaskClient, reporter: tuple[str, str], body: str, field: str
) -> None:
    _, secret = reporter
    assert post(client, secret, summary(0)).status_code == 200
    before = snapshot(app)
    answer = post(client, secret, body)
    assert answer.status_code == 400, answer.text
    assert answer.get_json()["field"] == field
    assert snapshot(app) == before


def test_more_heartbeats_a_minute_than_the_bound_get_429_and_write_nothing(
    app: Flask, client: FlaskClient, reporter: tuple[str, str]
) -> None:
    app.config["HEARTBEATS_PER_INSTALL_PER_MINUTE"] = 3
    _, secret = reporter
    answers = [post(client, secret, summary(seq)).status_code for seq in (1, 2, 3)]
    assert answers == [200, 200, 200]
    before = snapshot(app)
    refused = post(client, secret, summary(4))
    # (a minute boundary between the posts would let it through: the window restarts)
    if refused.status_code == 200:
        pytest.skip("the posts straddled a minute boundary")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert snapshot(app) == before


def test_only_post_is_answered(client: FlaskClient) -> None:
    answer = client.get("/api/heartbeat")
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"


def test_the_summary_hooks_see_previous_and_current_after_the_write_only(
    app: Flask, client: FlaskClient, reporter: tuple[str, str]
) -> None:
    _, secret = reporter
    seen: list[tuple[str, ClusterSummary | None, ClusterSummary, int | None]] = []

    def hook(install: Install, previous: ClusterSummary | None, current: ClusterSummary) -> None:
        # the write has committed: a fresh read already sees the current seq
        entity = ClusterHeartbeat.key_for(install.key).get(use_cache=False)
        seen.append((install.cluster_name, previous, current, entity.seq if entity else None))

    app.extensions[SUMMARY_HOOKS].append(hook)
    first, second = summary(1), summary(2, machines=1)
    assert post(client, secret, first).status_code == 200
    assert post(client, secret, second).status_code == 200
    assert post(client, secret, second).status_code == 409  # refused: no hook
    assert post(client, secret, "{").status_code == 400
    assert seen == [("prod", None, first, 1), ("prod", first, second, 2)]


def test_a_failing_hook_leaves_the_heartbeat_stored_and_acknowledged(
    app: Flask, client: FlaskClient, reporter: tuple[str, str]
) -> None:
    manage, secret = reporter

    def broken(*_: object) -> None:
        raise RuntimeError("smtp down")

    app.extensions[SUMMARY_HOOKS].append(broken)
    assert post(client, secret, summary(1)).status_code == 200
    entity = stored(app, manage)
    assert entity is not None and entity.seq == 1


def test_the_secret_never_reaches_the_log(
    client: FlaskClient, reporter: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, secret = reporter
    with caplog.at_level("DEBUG"):
        post(client, secret, summary(1))
        post(client, secret + "x", summary(2))
    assert secret.split(".")[1] not in caplog.text


def test_the_ndb_model_is_one_entity_per_install(
    app: Flask, client: FlaskClient, reporter: tuple[str, str]
) -> None:
    _, secret = reporter
    for seq in range(1, 6):
        assert post(client, secret, summary(seq, machines=seq * 10)).status_code == 200
    with app.extensions["ndb_client"].context():
        assert ClusterHeartbeat.query().count() == 1


def test_the_same_seq_sent_at_once_is_stored_once(
    app: Flask, client: FlaskClient, reporter: tuple[str, str]
) -> None:
    manage, secret = reporter
    sent = summary(1)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda _: post(app.test_client(), secret, sent).status_code, range(4))
        )
    assert answers.count(200) == 1, answers
    assert set(answers) <= {200, 409}, answers
    entity = stored(app, manage)
    assert entity is not None and entity.seq == 1 and entity.in_window == 1


def test_an_expired_install_cannot_report_and_the_cron_forgets_its_heartbeats(
    app: Flask, client: FlaskClient, reporter: tuple[str, str]
) -> None:
    manage, secret = reporter
    assert post(client, secret, summary(1)).status_code == 200
    with app.extensions["ndb_client"].context():
        install = Install.get_by_token(manage)
        install.expires = datetime.now(UTC) - timedelta(seconds=1)
        install.put()
    before = snapshot(app)
    assert post(client, secret, summary(2)).status_code == 401
    assert snapshot(app) == before
    cron = client.get("/cron/discovery/cleanup", headers={"X-Appengine-Cron": "true"})
    assert cron.status_code == 200
    assert _installs_and_heartbeats(app) == []
