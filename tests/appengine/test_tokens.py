"""Read and manage tokens apart; discovery tokens stored hashed and ended with their install."""

from __future__ import annotations

import hashlib
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appengine.discovery_models import DiscoveryMember, DiscoveryToken
from appengine.models import Install, read_token
from tests.appengine.conftest import csrf_token
from tests.appengine.discovery_helpers import count_entities, v2_error
from tests.appengine.test_discovery_panel import make_url, register
from tests.appengine.test_installs import create

pytest_plugins = ("tests.appengine.discovery_fixtures",)


@pytest.fixture
def manage(discovery_client: FlaskClient) -> str:
    return create(discovery_client)


def test_the_permalink_serves_the_document_with_the_read_token_only(
    discovery_client: FlaskClient, manage: str
) -> None:
    permalink = discovery_client.get(f"/cloud-config/{read_token(manage)}")
    assert permalink.status_code == 200
    assert manage not in permalink.text
    assert discovery_client.get(f"/cloud-config/{manage}").status_code == 404


def test_the_read_token_opens_no_install_page(discovery_client: FlaskClient, manage: str) -> None:
    answer = discovery_client.get(f"/installs/{read_token(manage)}")
    assert answer.status_code == 404
    assert "token: no install has this token" in answer.text


def test_the_read_token_cannot_delete_the_install(
    discovery_app: Flask, discovery_client: FlaskClient, manage: str
) -> None:
    answer = discovery_client.post(
        f"/installs/{read_token(manage)}/delete", data={"csrf_token": csrf_token(discovery_client)}
    )
    assert answer.status_code == 404
    assert count_entities(discovery_app, Install) == 1
    assert discovery_client.get(f"/cloud-config/{read_token(manage)}").status_code == 200


def test_the_read_token_cannot_make_or_read_discovery_urls(
    discovery_app: Flask, discovery_client: FlaskClient, manage: str
) -> None:
    make_url(discovery_client, manage)  # one the read token must not reveal
    answer = discovery_client.post(
        f"/installs/{read_token(manage)}/discovery",
        data={"size": "3", "csrf_token": csrf_token(discovery_client)},
    )
    assert answer.status_code == 404
    assert count_entities(discovery_app, DiscoveryToken) == 1
    permalink = discovery_client.get(f"/cloud-config/{read_token(manage)}").text
    assert "/discovery/" not in permalink


def test_the_read_token_does_not_come_back_to_the_install(
    discovery_client: FlaskClient, manage: str
) -> None:
    answer = discovery_client.post(
        "/lookup", data={"csrf_token": csrf_token(discovery_client), "token": read_token(manage)}
    )
    assert answer.status_code == 404


def test_the_install_page_shows_the_read_token_in_every_machine_facing_line(
    discovery_client: FlaskClient, manage: str
) -> None:
    page = discovery_client.get(f"/installs/{manage}").text
    for element in ("command", "include", "permalink", "download"):
        match = re.search(rf'id="{element}"(.*?)</', page, re.DOTALL)
        assert match, element
        assert read_token(manage) in match.group(1)
        assert manage not in match.group(1)


def test_discovery_tokens_are_stored_as_hashes(
    discovery_app: Flask, discovery_client: FlaskClient, manage: str
) -> None:
    for_install = make_url(discovery_client, manage).rsplit("/", 1)[1]
    anonymous = discovery_client.get("/new?size=3").text.rsplit("/", 1)[1]
    with discovery_app.extensions["ndb_client"].context():
        stored = DiscoveryToken.query().fetch()
        texts = [repr(entity.to_dict()) for entity in stored]
    names = {t.key.id() for t in stored}
    assert names == {hashlib.sha256(t.encode()).hexdigest() for t in (for_install, anonymous)}
    for text in texts:
        assert for_install not in text and anonymous not in text


def test_deleting_an_install_ends_its_discovery_urls_at_once(
    discovery_app: Flask, discovery_client: FlaskClient, manage: str
) -> None:
    directory = make_url(discovery_client, manage, "3")
    register(discovery_client, directory, "a1", "one=http://10.0.0.1:2380")
    anonymous = discovery_client.get("/new?size=3").text.removeprefix("http://localhost")
    answer = discovery_client.post(
        f"/installs/{manage}/delete", data={"csrf_token": csrf_token(discovery_client)}
    )
    assert answer.status_code == 303
    assert v2_error(discovery_client.get(f"{directory}/_config/size")) == (404, 100)
    again = discovery_client.put(
        f"{directory}/b2?prevExist=false",
        data={"value": "two=http://10.0.0.2:2380"},
        content_type="application/x-www-form-urlencoded",
    )
    assert v2_error(again) == (404, 100)
    assert count_entities(discovery_app, DiscoveryToken) == 1  # the anonymous one stays
    assert count_entities(discovery_app, DiscoveryMember) == 0
    assert discovery_client.get(f"{anonymous}/_config/size").status_code == 200


def test_a_token_whose_install_is_gone_answers_404_before_any_cleanup(
    discovery_app: Flask, discovery_client: FlaskClient, manage: str
) -> None:
    directory = make_url(discovery_client, manage, "3")
    with discovery_app.extensions["ndb_client"].context():
        assert Install.delete_by_token(manage)  # the install only: as if cut short
    assert count_entities(discovery_app, DiscoveryToken) == 1
    assert v2_error(discovery_client.get(directory)) == (404, 100)
    answer = discovery_client.put(
        f"{directory}/a1?prevExist=false",
        data={"value": "one=http://10.0.0.1:2380"},
        content_type="application/x-www-form-urlencoded",
    )
    assert v2_error(answer) == (404, 100)
    assert count_entities(discovery_app, DiscoveryMember) == 0
