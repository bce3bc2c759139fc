"""The v2 discovery endpoints answer exactly what etcd 3.4's discovery client expects."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from appengine import discovery_watch, policy
from appengine.discovery_models import DiscoveryMember, DiscoveryToken
from tests.appengine.discovery_helpers import count_entities, v2_error
from vulcano.lab.installer import installer_server
from vulcano.lab.poll import wait_for
from vulcano.lab.services import DatastoreEmulator
from vulcano.lab.wsgi import WsgiServer

pytest_plugins = ("tests.appengine.discovery_fixtures",)

PEER = "m0=http://127.0.0.1:2380"


def new_directory(client: FlaskClient, size: int = 3) -> str:
    """A fresh token's directory path, as etcd takes it from the discovery URL."""
    answer = client.get(f"/new?size={size}")
    assert answer.status_code == 200, answer.text
    return answer.text.removeprefix("http://localhost")


def register(client: FlaskClient, directory: str, member_id: str, value: str = PEER) -> Any:
    return client.put(
        f"{directory}/{member_id}?prevExist=false",
        data={"value": value},
        content_type="application/x-www-form-urlencoded",
    )


# --- /new -------------------------------------------------------------------------------


def test_new_answers_the_discovery_url_as_text_with_a_128_bit_token(
    discovery_client: FlaskClient,
) -> None:
    first = discovery_client.get("/new?size=3")
    second = discovery_client.get("/new?size=3")
    assert first.status_code == 200
    assert first.mimetype == "text/plain"
    assert re.fullmatch(r"http://localhost/discovery/[0-9a-f]{32}", first.text)
    assert first.text != second.text


@pytest.mark.parametrize(("query", "size"), [("", "3"), ("?size=1", "1"), ("?size=9", "9")])
def test_new_size_becomes_config_size(discovery_client: FlaskClient, query: str, size: str) -> None:
    directory = discovery_client.get(f"/new{query}").text.removeprefix("http://localhost")
    answer = discovery_client.get(f"{directory}/_config/size")
    assert answer.status_code == 200
    assert answer.json == {
        "action": "get",
        "node": {
            "key": f"{directory}/_config/size",
            "value": size,
            "modifiedIndex": 1,
            "createdIndex": 1,
        },
    }


@pytest.mark.parametrize(
    "size", ["0", "10", "-1", "abc", "3.0", " 3", "", "1e1", "99999999999999999999", "\uff13"]
)
def test_bad_sizes_are_400_and_create_no_token(
    discovery_app: Flask, discovery_client: FlaskClient, size: str
) -> None:
    answer = discovery_client.get("/new", query_string={"size": size})
    assert v2_error(answer) == (400, 209)
    assert "size" in answer.json["cause"]
    assert count_entities(discovery_app, DiscoveryToken) == 0


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "HEAD", "PROPFIND"])
def test_new_refuses_other_methods(
    discovery_app: Flask, discovery_client: FlaskClient, method: str
) -> None:
    answer = discovery_client.open("/new?size=3", method=method)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "GET"
    if method != "HEAD":
        assert v2_error(answer) == (405, 209)
    assert count_entities(discovery_app, DiscoveryToken) == 0


# --- the directory ------------------------------------------------------------------------


def test_listing_skips_nothing_and_x_etcd_index_covers_every_node(
    discovery_client: FlaskClient,
) -> None:
    directory = new_directory(discovery_client)
    register(discovery_client, directory, "a1")
    register(discovery_client, directory, "b2", "m1=http://127.0.0.1:2381")
    answer = discovery_client.get(f"{directory}?quorum=false&recursive=false&sorted=false")
    assert answer.status_code == 200
    node = answer.json["node"]
    assert node["key"] == directory and node["dir"] is True
    members = [n for n in node["nodes"] if n["key"] != f"{directory}/_config"]
    assert [(n["key"], n["value"], n["createdIndex"]) for n in members] == [
        (f"{directory}/a1", PEER, 2),
        (f"{directory}/b2", "m1=http://127.0.0.1:2381", 3),
    ]
    assert int(answer.headers["X-Etcd-Index"]) >= max(n["modifiedIndex"] for n in node["nodes"])


def test_registration_is_201_and_a_repeat_is_412_105_changing_nothing(
    discovery_client: FlaskClient,
) -> None:
    directory = new_directory(discovery_client)
    created = register(discovery_client, directory, "8e9e05c52164694d")
    assert created.status_code == 201
    assert created.json == {
        "action": "create",
        "node": {
            "key": f"{directory}/8e9e05c52164694d",
            "value": PEER,
            "modifiedIndex": 2,
            "createdIndex": 2,
        },
    }
    before = discovery_client.get(directory)
    repeat = register(discovery_client, directory, "8e9e05c52164694d", "m9=http://10.0.0.9:2380")
    assert repeat.status_code == 412
    assert repeat.json == {
        "errorCode": 105,
        "message": "Key already exists",
        "cause": "/discovery/<discovery-token>/8e9e05c52164694d",  # its token redacted
        "index": 2,
    }
    after = discovery_client.get(directory)
    assert after.json == before.json
    assert after.headers["X-Etcd-Index"] == before.headers["X-Etcd-Index"] == "2"


def test_self_watch_returns_the_new_member_at_once(discovery_client: FlaskClient) -> None:
    directory = new_directory(discovery_client)
    created = register(discovery_client, directory, "a1").json["node"]
    answer = discovery_client.get(f"{directory}/a1?wait=true&waitIndex={created['createdIndex']}")
    assert answer.status_code == 200
    assert answer.json == {"action": "create", "node": created}


def test_directory_watch_returns_each_member_once_then_an_empty_200(
    discovery_client: FlaskClient,
) -> None:
    directory = new_directory(discovery_client)
    index = int(discovery_client.get(directory).headers["X-Etcd-Index"])
    for member_id in ("c3", "a1", "b2"):
        register(discovery_client, directory, member_id)
    seen = []
    wait_index = index + 1
    for _ in range(3):
        answer = discovery_client.get(
            f"{directory}?recursive=true&wait=true&waitIndex={wait_index}"
        )
        assert answer.status_code == 200
        assert answer.json["action"] == "create"
        seen.append(answer.json["node"]["key"].rsplit("/", 1)[1])
        wait_index = answer.json["node"]["modifiedIndex"] + 1
    assert seen == ["c3", "a1", "b2"]
    idle = discovery_client.get(f"{directory}?recursive=true&wait=true&waitIndex={wait_index}")
    assert idle.status_code == 200
    assert idle.data == b""
    assert idle.headers["X-Etcd-Index"] == "4"


def test_directory_watch_never_reports_config(discovery_client: FlaskClient) -> None:
    directory = new_directory(discovery_client)
    answer = discovery_client.get(f"{directory}?recursive=true&wait=true&waitIndex=1")
    assert answer.status_code == 200
    assert answer.data == b""


def test_a_waiting_watch_is_woken_by_a_registration_not_by_its_poll(
    discovery_app: Flask, discovery_server: WsgiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The watch would poll the Datastore again only at its timeout, a minute away, and
    # this client gives up after half of that: only the wakeup the registration sends
    # can answer it (a broken wakeup: the client's read times out, no answer).
    discovery_app.config["DISCOVERY_WATCH_TIMEOUT"] = 60.0
    monkeypatch.setattr(policy, "DISCOVERY_WATCH_POLL_FIRST", 120.0)
    monkeypatch.setattr(policy, "DISCOVERY_WATCH_POLL_MAX", 120.0)
    url = requests.get(f"{discovery_server.url}/new?size=2", timeout=5).text
    token = url.rsplit("/", 1)[1]
    answers: list[requests.Response | Exception] = []

    def watch() -> None:
        params = {"recursive": "true", "wait": "true", "waitIndex": "2"}
        try:
            answers.append(requests.get(url, params=params, timeout=30))
        except requests.RequestException as exc:
            answers.append(exc)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        wait_for(lambda: discovery_watch.waiting_on(token) == 1, 10, "the watch waiting")
        created = requests.put(
            f"{url}/a1", params={"prevExist": "false"}, data={"value": PEER}, timeout=5
        )
        assert created.status_code == 201
    finally:
        watcher.join(30)
    [answer] = answers
    assert isinstance(answer, requests.Response), f"the registration never woke it: {answer}"
    assert answer.status_code == 200
    assert answer.json()["node"]["key"].endswith("/a1")


# --- unknown tokens and bad input ------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/discovery/0123456789abcdef0123456789abcdef/_config/size",
        "/discovery/0123456789abcdef0123456789abcdef",
        "/discovery/0123456789abcdef0123456789abcdef/a1?wait=true&waitIndex=2",
        "/discovery/not-a-token",
        "/discovery/",
        "/discovery",
    ],
)
def test_unknown_tokens_are_404_100(discovery_client: FlaskClient, path: str) -> None:
    assert v2_error(discovery_client.get(path)) == (404, 100)


def test_registration_under_an_unknown_token_is_404_100_and_stores_nothing(
    discovery_app: Flask, discovery_client: FlaskClient
) -> None:
    answer = register(discovery_client, "/discovery/0123456789abcdef0123456789abcdef", "a1")
    assert v2_error(answer) == (404, 100)
    assert count_entities(discovery_app, DiscoveryMember) == 0


FORM = "application/x-www-form-urlencoded"

BAD_REQUESTS = [
    # (method, path under the directory, query, body, content type, status, errorCode)
    ("PUT", "/d4", "", "value=" + PEER, FORM, 400, 209),  # no prevExist
    ("PUT", "/d4", "prevExist=true", "value=" + PEER, FORM, 400, 209),
    ("PUT", "/d4", "prevExist=false&ttl=5", "value=" + PEER, FORM, 400, 209),
    ("PUT", "/d4", "prevExist=false&dir=true", "", FORM, 400, 209),
    ("PUT", "/d4", "prevExist=false", '{"value": "x"}', "application/json", 400, 210),
    ("PUT", "/d4", "prevExist=false", "", FORM, 400, 200),
    ("PUT", "/d4", "prevExist=false", "value=", FORM, 400, 200),
    ("PUT", "/d4", "prevExist=false", "other=1", FORM, 400, 209),
    ("PUT", "/d4", "prevExist=false", "value=" + PEER + "&ttl=5", FORM, 400, 209),
    ("PUT", "/d4", "prevExist=false", f"value={PEER}&value={PEER}", FORM, 400, 210),
    ("PUT", "/d4", "prevExist=false", "value=nonsense", FORM, 400, 210),
    ("PUT", "/d4", "prevExist=false", "value==http://127.0.0.1:2380", FORM, 400, 210),
    ("PUT", "/d4", "prevExist=false", "value=m=ftp://127.0.0.1:2380", FORM, 400, 210),
    ("PUT", "/d4", "prevExist=false", "value=m=http://127.0.0.1:2380/x", FORM, 400, 210),
    ("PUT", "/d4", "prevExist=false", "value=m=http://127.0.0.1:notaport", FORM, 400, 210),
    ("PUT", "/d4", "prevExist=false", "value=m=http://u:p@127.0.0.1:2380", FORM, 400, 210),
    ("PUT", "/d4", "prevExist=false", "value=m%0a=http://127.0.0.1:2380", FORM, 400, 210),
    ("PUT", "/d4", "prevExist=false", "value=" + "m=http://h:1," * 300, FORM, 400, 210),
    ("PUT", "/d4", "prevExist=false", "value=%ff%fe", FORM, 400, 210),
    ("PUT", "/d4", "prevExist=false", "value=" + "x" * 5000, FORM, 413, 210),
    ("PUT", "/d4", "prevExist=false", "value=" + "x" * 300_000, FORM, 413, 210),
    ("PUT", "/d4", "prevExist=false", "garbage", FORM, 400, 210),
    ("PUT", "/NotHex", "prevExist=false", "value=" + PEER, FORM, 400, 209),
    ("PUT", "/0123456789abcdef0", "prevExist=false", "value=" + PEER, FORM, 400, 209),
    ("PUT", "/a1/deeper", "prevExist=false", "value=" + PEER, FORM, 400, 209),
    ("PUT", "/_config/size", "prevExist=false", "value=1", FORM, 412, 105),
    ("PUT", "/_config", "prevExist=false", "value=1", FORM, 412, 105),
    ("PUT", "", "prevExist=false", "value=1", FORM, 412, 105),
    ("PUT", "/a1", "prevExist=false", "value=" + PEER, FORM, 412, 105),  # a repeat
    ("POST", "", "", "value=" + PEER, FORM, 405, 209),
    ("DELETE", "/a1", "", "", FORM, 405, 209),
    ("DELETE", "", "recursive=true", "", FORM, 405, 209),
    ("PATCH", "/a1", "", "value=" + PEER, FORM, 405, 209),
    ("OPTIONS", "", "", "", FORM, 405, 209),
    ("PROPFIND", "/a1", "", "", FORM, 405, 209),
    ("GET", "", "wait=true&waitIndex=abc", "", FORM, 400, 203),
    ("GET", "", "wait=true&waitIndex=-1", "", FORM, 400, 203),
    ("GET", "", "wait=maybe", "", FORM, 400, 209),
    ("GET", "", "recursive=2", "", FORM, 400, 209),
    ("GET", "/b2", "", "", FORM, 404, 100),
    ("GET", "/_config/other", "", "", FORM, 404, 100),
]


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "content_type", "status", "code"), BAD_REQUESTS
)
def test_bad_requests_get_the_v2_error_and_change_nothing(
    discovery_app: Flask,
    discovery_client: FlaskClient,
    method: str,
    path: str,
    query: str,
    body: str,
    content_type: str,
    status: int,
    code: int,
) -> None:
    directory = new_directory(discovery_client)
    assert register(discovery_client, directory, "a1").status_code == 201
    before = discovery_client.get(f"{directory}?recursive=true")
    answer = discovery_client.open(
        f"{directory}{path}?{query}",
        method=method,
        data=body.encode("latin-1") if "%ff" not in body else b"value=\xff\xfe",
        content_type=content_type,
    )
    assert v2_error(answer) == (status, code)
    # A method no route lists is refused before the token is looked up: index unknown.
    assert answer.headers["X-Etcd-Index"] == ("0" if method == "PROPFIND" else "2")
    if status == 405:
        assert answer.headers["Allow"] == "GET, HEAD, PUT"
    after = discovery_client.get(f"{directory}?recursive=true")
    assert after.json == before.json
    assert after.headers["X-Etcd-Index"] == "2"
    assert count_entities(discovery_app, DiscoveryMember) == 1


# --- races ------------------------------------------------------------------------------


def test_simultaneous_registrations_never_share_an_index_or_lose_a_member(
    discovery_server: WsgiServer,
) -> None:
    url = requests.get(f"{discovery_server.url}/new?size=9", timeout=5).text
    ids = [f"{i:x}{i:x}" for i in range(1, 10)]
    start = threading.Barrier(len(ids))
    answers: dict[str, requests.Response] = {}

    def put(member_id: str) -> None:
        start.wait(10)
        answers[member_id] = requests.put(
            f"{url}/{member_id}",
            params={"prevExist": "false"},
            data={"value": f"n{member_id}=http://127.0.0.1:2380"},
            timeout=30,
        )

    threads = [threading.Thread(target=put, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(answers) == sorted(ids)
    assert {a.status_code for a in answers.values()} == {201}
    indexes = sorted(a.json()["node"]["createdIndex"] for a in answers.values())
    assert indexes == list(range(2, 11))
    listing = requests.get(url, timeout=5)
    listed = {n["key"].rsplit("/", 1)[1] for n in listing.json()["node"]["nodes"]}
    assert listed == {"_config", *ids}
    assert listing.headers["X-Etcd-Index"] == "10"


def test_the_same_member_registering_twice_at_once_gets_in_once(
    discovery_server: WsgiServer,
) -> None:
    url = requests.get(f"{discovery_server.url}/new?size=3", timeout=5).text
    start = threading.Barrier(4)
    codes: list[int] = []

    def put() -> None:
        start.wait(10)
        codes.append(
            requests.put(
                f"{url}/a1", params={"prevExist": "false"}, data={"value": PEER}, timeout=30
            ).status_code
        )

    threads = [threading.Thread(target=put) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(codes) == [201, 412, 412, 412]
    assert requests.get(url, timeout=5).headers["X-Etcd-Index"] == "2"


# --- secrets ------------------------------------------------------------------------------


@pytest.mark.slow
def test_discovery_tokens_never_reach_the_access_log(
    datastore: DatastoreEmulator, tmp_path: Path
) -> None:
    log_path = tmp_path / "gunicorn.log"
    with installer_server(datastore, log_path, threads=4, validate="off") as server:
        url = requests.get(f"{server.url}/new?size=1", timeout=5).text
        token = url.rsplit("/", 1)[1]
        assert requests.get(f"{url}/_config/size", timeout=5).status_code == 200
        assert requests.get(f"{server.url}/discovery/{'f' * 32}", timeout=5).status_code == 404
        log = log_path.read_text()
    assert "GET /new?size=1" in log  # the access log is on: a token would show up here
    assert "/_config/size" in log
    assert token not in log
    assert "f" * 32 not in log


def test_listings_taken_during_registrations_never_show_a_member_past_x_etcd_index(
    discovery_server: WsgiServer,
) -> None:
    # etcd watches from X-Etcd-Index + 1: a listed member past it would be seen twice.
    violations: list[str] = []
    listings = 0
    partial = 0  # listings taken while only some members were in
    for _ in range(3):
        url = requests.get(f"{discovery_server.url}/new?size=9", timeout=5).text
        done = threading.Event()
        codes: list[int] = []

        def register_all(
            url: str = url, done: threading.Event = done, codes: list[int] = codes
        ) -> None:
            try:
                for i in range(1, 10):
                    answer = requests.put(
                        f"{url}/{i:x}",
                        params={"prevExist": "false"},
                        data={"value": f"n{i}=http://127.0.0.1:2380"},
                        timeout=30,
                    )
                    codes.append(answer.status_code)
            finally:
                done.set()

        writer = threading.Thread(target=register_all)
        writer.start()
        while not done.is_set():
            listing = requests.get(url, timeout=10)
            listings += 1
            index = int(listing.headers["X-Etcd-Index"])
            members = [
                n for n in listing.json()["node"].get("nodes", []) if "_config" not in n["key"]
            ]
            partial += 0 < len(members) < 9
            for n in members:
                if n["createdIndex"] > index:
                    violations.append(f"{n['key']} at {n['createdIndex']} > {index}")
        writer.join(60)
        # every registration went in: the listings raced real writes, not refusals
        assert codes == [201] * 9
        final = requests.get(url, timeout=10).json()["node"]["nodes"]
        assert len([n for n in final if "_config" not in n["key"]]) == 9
    assert listings > 0
    assert partial > 0  # some listing met the registrations halfway
    assert violations == []
