"""Discovery's abuse bounds with the installer's defaults, against the real emulator.

`/new` is rate-limited per client, a token takes a bounded number of registrations
however many names a client makes up (also when they race), and deleting an install
deletes every discovery token it has, with their members.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from appengine import limits
from appengine.discovery_models import DiscoveryMember, DiscoveryToken, token_key
from appengine.models import provisioner_token, read_token
from tests.appengine.conftest import csrf_token
from tests.appengine.discovery_helpers import count_entities, v2_error
from tests.appengine.test_discovery_panel import make_url
from tests.appengine.test_installs import create

pytest_plugins = ("tests.appengine.discovery_fixtures",)

RACERS = 10


def _put(client: FlaskClient, directory: str, member_id: str) -> Any:
    return client.put(
        f"{directory}/{member_id}?prevExist=false",
        data={"value": f"m{member_id}=http://10.0.0.1:2380"},
        content_type="application/x-www-form-urlencoded",
    )


def _new(client: FlaskClient, size: int, **kwargs: Any) -> str:
    answer = client.get(f"/new?size={size}", **kwargs)
    assert answer.status_code == 200, answer.text
    return str(answer.text).removeprefix("http://localhost")


def test_new_is_limited_per_client_by_default(
    discovery_app: Flask, discovery_client: FlaskClient
) -> None:
    allowed = limits.NEW_TOKENS_PER_CLIENT_PER_HOUR
    for _ in range(allowed):
        _new(discovery_client, 3)
    refused = discovery_client.get("/new?size=3")
    assert v2_error(refused) == (429, 300)
    assert f"at most {allowed} per hour from one address" in refused.json["cause"]
    assert int(refused.headers["Retry-After"]) > 0
    assert count_entities(discovery_app, DiscoveryToken) == allowed
    # another address has its own quota
    _new(discovery_client, 3, environ_base={"REMOTE_ADDR": "192.0.2.9"})


def test_a_client_making_up_names_never_grows_the_directory_past_the_cap(
    discovery_app: Flask, discovery_client: FlaskClient
) -> None:
    directory = _new(discovery_client, 3)
    cap = 3 * (1 + limits.DISCOVERY_EXTRA_REGISTRATIONS_PER_SIZE)
    answers = [_put(discovery_client, directory, f"{n:x}") for n in range(1, 41)]
    assert [a.status_code for a in answers[:cap]] == [201] * cap
    for refused in answers[cap:]:
        assert v2_error(refused) == (403, 209)
        assert refused.json["cause"] == f"registrations: a token of size 3 takes at most {cap}"
        assert refused.json["index"] == 1 + cap
    listed = discovery_client.get(directory)
    assert listed.headers["X-Etcd-Index"] == str(1 + cap)
    assert len(listed.json["node"]["nodes"]) == 1 + cap  # _config and the members
    assert count_entities(discovery_app, DiscoveryMember) == cap


def test_registrations_racing_past_the_cap_store_no_more_than_it(
    discovery_app: Flask, discovery_client: FlaskClient
) -> None:
    directory = _new(discovery_client, 1)
    cap = 1 + limits.DISCOVERY_EXTRA_REGISTRATIONS_PER_SIZE
    start = threading.Barrier(RACERS)
    statuses: list[int] = []

    def member(n: int) -> None:
        client = discovery_app.test_client()
        start.wait()
        answer = _put(client, directory, f"a{n:x}")
        if answer.status_code != 201:
            v2_error(answer)  # every refusal is the v2 error JSON
        statuses.append(answer.status_code)

    threads = [threading.Thread(target=member, args=(n,)) for n in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(statuses) == RACERS, statuses
    created = statuses.count(201)
    assert 1 <= created <= cap
    assert set(statuses) <= {201, 403, 500}  # 500: lost every retry to the others
    assert count_entities(discovery_app, DiscoveryMember) == created
    assert discovery_client.get(directory).headers["X-Etcd-Index"] == str(1 + created)


def test_deleting_an_install_deletes_all_its_discovery_tokens_and_their_members(
    discovery_app: Flask, discovery_client: FlaskClient
) -> None:
    manage, other = create(discovery_client), create(discovery_client)
    bearer = {"Authorization": f"Bearer {provisioner_token(read_token(manage))}"}
    mine = [
        make_url(discovery_client, manage, "3"),
        make_url(discovery_client, manage, "1"),
        _new(discovery_client, 3, headers=bearer),  # its provisioning container's
    ]
    kept = [make_url(discovery_client, other, "3"), _new(discovery_client, 3)]
    for directory in mine + kept:
        assert _put(discovery_client, directory, "8e9e05c52164694d").status_code == 201
    assert _put(discovery_client, mine[0], "91bc3c398fb3c146").status_code == 201
    answer = discovery_client.post(
        f"/installs/{manage}/delete", data={"csrf_token": csrf_token(discovery_client)}
    )
    assert answer.status_code == 303
    for directory in mine:
        assert v2_error(discovery_client.get(directory)) == (404, 100)
    for directory in kept:
        assert discovery_client.get(directory).status_code == 200
    with discovery_app.extensions["ndb_client"].context():
        for directory in mine:
            key = token_key(directory.rsplit("/", 1)[1])
            assert key.get(use_cache=False) is None
            assert DiscoveryMember.query(ancestor=key).fetch(keys_only=True) == []
    assert count_entities(discovery_app, DiscoveryToken) == len(kept)
    assert count_entities(discovery_app, DiscoveryMember) == len(kept)
