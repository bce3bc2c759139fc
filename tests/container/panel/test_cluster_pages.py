"""The clusters pages: the list, the create form and its bad input, a cluster, user-data."""

from __future__ import annotations

import html
import re

import pytest
from flask import Flask

from container.services import clusters
from container.store import Store
from tests.container.panel.conftest import Browser, add_cluster
from tests.container.panel.lab import Lab

GOOD = {"name": "edge", "size": "3", "flavour": "cloud-init", "network": "10.250.0.0/16"}


def test_the_list_shows_every_cluster_in_the_store(admin: Browser, store: Store) -> None:
    assert 'id="no-clusters"' in admin.get("/clusters").text
    add_cluster(store, "prod", "http://10.0.0.1:2379")
    add_cluster(store, "edge", "")
    page = admin.get("/clusters").text
    assert page.index('href="/clusters/edge"') < page.index('href="/clusters/prod"')
    assert "<code>http://10.0.0.1:2379</code>" in page
    assert "none yet" in page


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"name": "Prod_1"}, "name", "lowercase letters"),
        ({"name": ""}, "name", "lowercase letters"),
        ({"size": "three"}, "size", "a whole number"),
        ({"size": "0"}, "size", "between 1 and 100"),
        ({"flavour": "windows"}, "flavour", "choose one of"),
        ({"network": "10.250.0.1/16"}, "network", "host bits set"),
        ({"network": "banana"}, "network", "not an IPv4 CIDR"),
    ],
)
def test_a_bad_create_form_is_refused_naming_the_field_and_creates_nothing(
    admin: Browser, store: Store, changes: dict[str, str], field: str, says: str
) -> None:
    answer = admin.post("/clusters", {**GOOD, **changes})
    assert answer.status_code == 400
    assert f'data-field="{field}"' in answer.text
    assert says in html.unescape(answer.text)
    assert clusters.list_clusters(store) == []


def test_a_name_taken_is_refused_and_the_cluster_kept(admin: Browser, store: Store) -> None:
    add_cluster(store, "edge", "http://10.0.0.1:2379", size=5)
    answer = admin.post("/clusters", GOOD)
    assert answer.status_code == 400
    assert 'data-field="name"' in answer.text
    assert clusters.get_cluster(store, "edge").size == 5


def test_creating_without_an_installer_to_ask_says_so_and_creates_nothing(
    admin: Browser, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VULCANO_INSTALLER_URL", raising=False)
    answer = admin.post("/clusters", GOOD)
    assert answer.status_code == 503
    assert "VULCANO_INSTALLER_URL" in answer.text
    assert clusters.list_clusters(store) == []


def test_a_clusters_page_shows_its_settings_and_machines(
    admin: Browser, lab_cluster: str, lab: Lab
) -> None:
    page = admin.get("/clusters/lab").text
    assert "<h1>Cluster lab</h1>" in page
    assert "<code>10.244.0.0/16</code>" in page
    assert '<dd id="machine-count">2</dd>' in page
    for link in ("machines", "units", "user-data"):
        assert f'href="/clusters/lab/{link}"' in page


def test_a_cluster_not_up_yet_says_so(admin: Browser, store: Store) -> None:
    add_cluster(store, "new", "")
    page = admin.get("/clusters/new").text
    assert "no etcd endpoints yet" in page


def test_an_unknown_cluster_is_a_404(admin: Browser) -> None:
    assert admin.get("/clusters/nosuch").status_code == 404
    assert admin.get("/clusters/nosuch/user-data").status_code == 404


def test_the_user_data_page_shows_every_nodes_document_and_makes_join_urls(
    app: Flask, admin: Browser, store: Store
) -> None:
    # node 2 joins as an agent only, pointed at the member's endpoint
    add_cluster(store, "edge", "http://10.0.0.1:2379", size=2)
    page = admin.get("/clusters/edge/user-data").text
    assert page.count('class="user-data"') == 2
    assert 'class="include"' not in page  # the token is not kept: there is no URL to show
    made = admin.post("/clusters/edge/join-url")
    assert made.status_code == 200
    urls = re.findall(r'<pre class="include">#include\n(\S+)</pre>', made.text)
    assert len(urls) == 2
    assert urls[0].startswith("http://localhost/join/edge/1?token=")
    node = app.test_client().get(html.unescape(urls[0]).removeprefix("http://localhost"))
    assert node.status_code == 200  # a node, with no login, only the token
    assert node.text.startswith("#cloud-config")


def test_a_test_alert_without_an_installer_to_ask_says_so(
    admin: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VULCANO_INSTALLER_URL", raising=False)
    answer = admin.post("/alerts/test")
    assert answer.status_code == 503
    assert "VULCANO_INSTALLER_URL" in answer.text


def test_a_test_alert_needs_the_login(browser: Browser) -> None:
    assert browser.post("/alerts/test").status_code == 302
