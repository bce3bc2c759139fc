"""The install page makes discovery URLs tied to the install and shows who registered."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appengine.discovery_models import DiscoveryToken
from appengine.models import Install
from tests.appengine.conftest import INSTALL_FIELDS as INSTALL
from tests.appengine.conftest import csrf_token
from tests.appengine.discovery_helpers import count_entities

pytest_plugins = ("tests.appengine.discovery_fixtures",)

_URL = re.compile(r'<code class="discovery-url">(http://localhost/discovery/[0-9a-f]{32})</code>')


@pytest.fixture
def install_token(discovery_app: Flask) -> str:
    with discovery_app.extensions["ndb_client"].context():
        _, token = Install.create(**INSTALL)
    return token


def make_url(client: FlaskClient, install_token: str, size: str = "3") -> str:
    page = f"/installs/{install_token}"
    answer = client.post(
        f"{page}/discovery", data={"size": size, "csrf_token": csrf_token(client, page)}
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["Location"].endswith(f"{page}#discovery")
    urls = _URL.findall(client.get(page).text)
    assert urls, "no discovery URL on the install page"
    return urls[0].removeprefix("http://localhost")


def register(client: FlaskClient, directory: str, member_id: str, value: str) -> None:
    answer = client.put(
        f"{directory}/{member_id}?prevExist=false",
        data={"value": value},
        content_type="application/x-www-form-urlencoded",
    )
    assert answer.status_code == 201, answer.text


def test_install_page_offers_a_discovery_button_with_csrf(
    discovery_client: FlaskClient, install_token: str
) -> None:
    page = discovery_client.get(f"/installs/{install_token}").text
    assert 'id="discovery-form"' in page
    assert f'action="/installs/{install_token}/discovery"' in page
    assert '<option value="3" selected>' in page


def test_the_button_makes_a_token_tied_to_the_install(
    discovery_app: Flask, discovery_client: FlaskClient, install_token: str
) -> None:
    directory = make_url(discovery_client, install_token, "5")
    assert discovery_client.get(f"{directory}/_config/size").json["node"]["value"] == "5"
    with discovery_app.extensions["ndb_client"].context():
        install = Install.get_by_token(install_token)
        assert install is not None
        tokens = DiscoveryToken.for_install(install.key)
    assert [t.token_for(install_token) for t in tokens] == [directory.rsplit("/", 1)[1]]


def test_the_page_shows_registered_members_in_order(
    discovery_client: FlaskClient, install_token: str
) -> None:
    directory = make_url(discovery_client, install_token, "3")
    register(discovery_client, directory, "b1", "alpha=http://10.0.0.1:2380")
    register(discovery_client, directory, "a2", "beta=http://10.0.0.2:2380")
    page = discovery_client.get(f"/installs/{install_token}").text
    assert re.findall(r'<td class="discovery-name">([^<]*)</td>', page) == ["alpha", "beta"]
    assert "2 of 3" in page
    assert "waiting for more" in page
    assert f"--discovery http://localhost{directory}</pre>" in page
    assert "discovery-warning" not in page


def test_the_page_warns_when_more_tried_to_join_than_the_size_allows(
    discovery_client: FlaskClient, install_token: str
) -> None:
    directory = make_url(discovery_client, install_token, "1")
    register(discovery_client, directory, "a1", "first=http://10.0.0.1:2380")
    register(discovery_client, directory, "a2", "late=http://10.0.0.2:2380")
    page = discovery_client.get(f"/installs/{install_token}").text
    assert re.findall(r'<td class="discovery-name">([^<]*)</td>', page) == ["first"]
    assert "1 of 1" in page and "cluster complete" in page
    assert "discovery-command" not in page
    warning = re.search(r'<p class="discovery-warning error">(.*?)</p>', page, re.S)
    assert warning is not None
    assert "1 more member" in warning.group(1)
    assert "late (http://10.0.0.2:2380)" in warning.group(1)


def test_member_names_are_escaped_on_the_page(
    discovery_client: FlaskClient, install_token: str
) -> None:
    directory = make_url(discovery_client, install_token, "1")
    register(discovery_client, directory, "a1", "<script>x</script>=http://10.0.0.1:2380")
    page = discovery_client.get(f"/installs/{install_token}").text
    assert "<script>x</script>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page


@pytest.mark.parametrize("size", ["0", "10", "x", ""])
def test_a_bad_size_is_400_naming_size_and_makes_nothing(
    discovery_app: Flask, discovery_client: FlaskClient, install_token: str, size: str
) -> None:
    page = f"/installs/{install_token}"
    answer = discovery_client.post(
        f"{page}/discovery", data={"size": size, "csrf_token": csrf_token(discovery_client, page)}
    )
    assert answer.status_code == 400
    assert "size: " in answer.text
    assert count_entities(discovery_app, DiscoveryToken) == 0


def test_the_button_without_csrf_is_refused_and_makes_nothing(
    discovery_app: Flask, discovery_client: FlaskClient, install_token: str
) -> None:
    answer = discovery_client.post(f"/installs/{install_token}/discovery", data={"size": "3"})
    assert answer.status_code == 400
    assert "csrf_token" in answer.text
    assert count_entities(discovery_app, DiscoveryToken) == 0


def test_the_button_for_an_unknown_install_is_404_and_makes_nothing(
    discovery_app: Flask, discovery_client: FlaskClient, install_token: str
) -> None:
    page = f"/installs/{install_token}"
    answer = discovery_client.post(
        f"/installs/{'A' * 43}/discovery",
        data={"size": "3", "csrf_token": csrf_token(discovery_client, page)},
    )
    assert answer.status_code == 404
    assert count_entities(discovery_app, DiscoveryToken) == 0
