"""Old discovery tokens are deleted, with their members, by the cron handler only."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
import yaml
from flask import Flask
from flask.testing import FlaskClient

from appengine.discovery_models import DiscoveryMember, DiscoveryToken
from tests.appengine.discovery_helpers import count_entities, make_app, v2_error
from vulcano.lab.services import DatastoreEmulator
from vulcano.lab.wsgi import WsgiServer

pytest_plugins = ("tests.appengine.discovery_fixtures",)

CRON = {"X-Appengine-Cron": "true"}
ROOT = Path(__file__).resolve().parents[2]


def token_aged(client: FlaskClient, app: Flask, age: timedelta, members: int = 2) -> str:
    """A token with `members` registrations, created `age` ago; its directory path."""
    directory = client.get("/new?size=3").text.removeprefix("http://localhost")
    for i in range(members):
        answer = client.put(
            f"{directory}/{i + 1:x}?prevExist=false",
            data={"value": f"m{i}=http://127.0.0.1:{2380 + i}"},
        )
        assert answer.status_code == 201
    with app.extensions["ndb_client"].context():
        token = DiscoveryToken.lookup(directory.rsplit("/", 1)[1])
        assert token is not None
        token.created = datetime.now(UTC) - age
        token.put()
    return directory


def test_cron_deletes_old_tokens_and_their_members_and_keeps_young_ones(
    discovery_app: Flask, discovery_client: FlaskClient
) -> None:
    old = token_aged(discovery_client, discovery_app, timedelta(days=8))
    young = token_aged(discovery_client, discovery_app, timedelta(days=6), members=1)
    answer = discovery_client.get("/cron/discovery/cleanup", headers=CRON)
    assert answer.status_code == 200
    assert answer.text == "deleted 1\n"
    assert v2_error(discovery_client.get(f"{old}/_config/size")) == (404, 100)
    assert discovery_client.get(f"{young}/_config/size").status_code == 200
    assert count_entities(discovery_app, DiscoveryToken) == 1
    assert count_entities(discovery_app, DiscoveryMember) == 1


def test_the_age_is_configurable(datastore: DatastoreEmulator) -> None:
    app = make_app(DISCOVERY_TOKEN_MAX_AGE=60)
    client = app.test_client()
    token_aged(client, app, timedelta(minutes=2))
    token_aged(client, app, timedelta(seconds=0))
    assert client.get("/cron/discovery/cleanup", headers=CRON).text == "deleted 1\n"
    assert count_entities(app, DiscoveryToken) == 1


def test_only_app_engine_cron_may_clean_up(
    discovery_app: Flask, discovery_client: FlaskClient
) -> None:
    token_aged(discovery_client, discovery_app, timedelta(days=30))
    for headers in ({}, {"X-Appengine-Cron": "false"}):
        answer = discovery_client.get("/cron/discovery/cleanup", headers=headers)
        assert answer.status_code == 403
    assert count_entities(discovery_app, DiscoveryToken) == 1
    assert count_entities(discovery_app, DiscoveryMember) == 2


def test_cron_yaml_schedules_the_handler(discovery_client: FlaskClient) -> None:
    jobs = yaml.safe_load((ROOT / "cron.yaml").read_text())["cron"]
    urls = [job["url"] for job in jobs]
    assert "/cron/discovery/cleanup" in urls
    assert discovery_client.get(urls[0], headers=CRON).status_code == 200


def test_a_watch_on_a_token_deleted_meanwhile_ends_with_404_100(
    discovery_app: Flask, discovery_server: WsgiServer
) -> None:
    discovery_app.config["DISCOVERY_WATCH_TIMEOUT"] = 10.0
    discovery_app.config["DISCOVERY_TOKEN_MAX_AGE"] = 0
    url = requests.get(f"{discovery_server.url}/new?size=3", timeout=5).text
    answers: list[requests.Response] = []
    watch = threading.Thread(
        target=lambda: answers.append(
            requests.get(f"{url}?recursive=true&wait=true&waitIndex=2", timeout=20)
        )
    )
    watch.start()
    # Let the watch get going (if it has not, it meets the deletion at once: also 404).
    time.sleep(0.5)
    try:
        cleaned = requests.get(
            f"{discovery_server.url}/cron/discovery/cleanup", headers=CRON, timeout=5
        )
        assert cleaned.text == "deleted 1\n"
    finally:
        watch.join(20)
    assert len(answers) == 1
    assert answers[0].status_code == 404
    assert answers[0].json()["errorCode"] == 100
