"""Every creation bound: a 4xx/429 that names the limit, and nothing stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appengine.discovery_models import DiscoveryMember, DiscoveryToken
from appengine.discovery_watch import WatchSlots
from appengine.limits import LimitReached
from appengine.models import Install, read_token
from tests.appengine.conftest import csrf_token
from tests.appengine.discovery_helpers import count_entities, make_app, v2_error
from tests.appengine.test_discovery_panel import make_url
from tests.appengine.test_installs import answers, create
from vulcano.lab.services import DatastoreEmulator

CRON = {"X-Appengine-Cron": "true"}


@pytest.fixture
def app(datastore: DatastoreEmulator) -> Flask:
    """The installer with small bounds, so tests reach them in a few requests."""
    return make_app(
        DATASTORE_PROJECT=datastore.project,
        NEW_TOKENS_PER_CLIENT_PER_HOUR=2,
        INSTALLS_PER_CLIENT_PER_HOUR=2,
        DISCOVERY_TOKENS_PER_INSTALL=2,
        DISCOVERY_EXTRA_REGISTRATIONS_PER_SIZE=1,
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _put(client: FlaskClient, directory: str, member_id: str) -> object:
    return client.put(
        f"{directory}/{member_id}?prevExist=false",
        data={"value": f"m{member_id}=http://10.0.0.1:2380"},
        content_type="application/x-www-form-urlencoded",
    )


def test_new_past_its_hourly_quota_is_a_429_naming_it(app: Flask, client: FlaskClient) -> None:
    assert client.get("/new?size=3").status_code == 200
    assert client.get("/new?size=x").status_code == 400  # refused: counts for nothing
    assert client.get("/new").status_code == 200
    refused = client.get("/new?size=3")
    assert v2_error(refused) == (429, 300)
    assert refused.json["cause"] == (
        "new discovery tokens: at most 2 per hour from one address; try again later"
    )
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert count_entities(app, DiscoveryToken) == 2
    other = client.get("/new?size=3", environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other.status_code == 200  # the quota is per client address


def test_installs_past_their_hourly_quota_are_a_429_naming_it(
    app: Flask, client: FlaskClient
) -> None:
    create(client)
    bad = client.post("/installs", data=answers(client, size="many"))
    assert bad.status_code == 400  # a refused form counts for nothing
    create(client)
    refused = client.post("/installs", data=answers(client))
    assert refused.status_code == 429
    assert "installs: at most 2 per hour from one address" in refused.text
    assert "Retry-After" in refused.headers
    assert count_entities(app, Install) == 2


def test_discovery_urls_per_install_past_the_limit_are_a_409_naming_it(
    app: Flask, client: FlaskClient
) -> None:
    manage = create(client)
    make_url(client, manage)
    make_url(client, manage)
    page = f"/installs/{manage}"
    refused = client.post(
        f"{page}/discovery", data={"size": "3", "csrf_token": csrf_token(client, page)}
    )
    assert refused.status_code == 409
    assert "discovery: an install has at most 2 discovery URLs" in refused.text
    assert count_entities(app, DiscoveryToken) == 2


def test_registrations_past_twice_the_size_are_a_403_naming_the_limit(
    app: Flask, client: FlaskClient
) -> None:
    directory = client.get("/new?size=1").text.removeprefix("http://localhost")
    assert _put(client, directory, "a1").status_code == 201  # type: ignore[attr-defined]
    assert _put(client, directory, "a2").status_code == 201  # type: ignore[attr-defined]
    refused = _put(client, directory, "a3")
    assert v2_error(refused) == (403, 209)
    assert refused.json["cause"] == "registrations: a token of size 1 takes at most 2"  # type: ignore[attr-defined]
    assert count_entities(app, DiscoveryMember) == 2
    again = _put(client, directory, "a1")  # a repeat is still the protocol's 412
    assert v2_error(again)[0] == 412


def test_an_install_expires_its_page_permalink_and_discovery_urls(
    app: Flask, client: FlaskClient
) -> None:
    manage = create(client)
    directory = make_url(client, manage)
    page = client.get(f"/installs/{manage}").text
    assert "then its page, permalink and discovery URLs are gone" in page
    with app.extensions["ndb_client"].context():
        install = Install.get_by_token(manage)
        assert install is not None
        assert install.expires - datetime.now(UTC) > timedelta(days=89)
        install.expires = datetime.now(UTC) - timedelta(seconds=1)
        install.put()
    for path in (f"/installs/{manage}", f"/cloud-config/{read_token(manage)}"):
        gone = client.get(path)
        assert gone.status_code == 410
        assert "token: this install expired on" in gone.text
        assert "installs are kept 90 days" in gone.text
    assert v2_error(client.get(f"{directory}/_config/size")) == (404, 100)
    assert v2_error(_put(client, directory, "a1")) == (404, 100)
    cleaned = client.get("/cron/discovery/cleanup", headers=CRON)
    assert "expired installs 1\n" in cleaned.text
    assert count_entities(app, Install) == 0
    assert count_entities(app, DiscoveryToken) == 0


def test_watch_slots_bound_the_process_each_token_and_each_client() -> None:
    slots = WatchSlots()
    limits = {"per_token": 2, "per_client": 2, "total": 4}
    with slots.hold("t1", "a", **limits), slots.hold("t1", "b", **limits):
        with pytest.raises(LimitReached, match="at most 2 wait at once on this token") as exc:
            slots.hold("t1", "c", **limits).__enter__()
        assert exc.value.status == 503
        with slots.hold("t2", "a", **limits):
            with pytest.raises(LimitReached, match="at most 2 wait at once from one address"):
                slots.hold("t3", "a", **limits).__enter__()
            with slots.hold("t3", "c", **limits):
                with pytest.raises(LimitReached, match="at most 4 wait at once on this server"):
                    slots.hold("t4", "d", **limits).__enter__()
                assert slots.waiting() == 4
    assert slots.waiting() == 0


def test_a_discovery_url_the_cron_deletes_gives_its_install_the_place_back(
    app: Flask, client: FlaskClient
) -> None:
    manage = create(client)
    make_url(client, manage)
    make_url(client, manage)
    with app.extensions["ndb_client"].context():
        install = Install.get_by_token(manage)
        assert install is not None and install.discovery_tokens == 2
        [old, _] = DiscoveryToken.for_install(install.key)
        old.created = datetime.now(UTC) - timedelta(days=8)
        old.put()
    assert client.get("/cron/discovery/cleanup", headers=CRON).text.startswith("deleted 1\n")
    make_url(client, manage)  # the third fits again: two live URLs, the limit is two
    assert count_entities(app, DiscoveryToken) == 2
