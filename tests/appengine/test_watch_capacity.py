"""With the most watches waiting that one worker allows, pages still answer at once.

gunicorn runs one worker of eight threads, as each of App Engine's two workers does.
The watches come from distinct loopback addresses, the way a cluster's members would.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from appengine import limits
from appengine.discovery_watch import watch_slots
from appengine.models import read_token
from tests.appengine.discovery_helpers import (
    MemberFactory,
    make_app,
    member_names,
    new_discovery_url,
    start_all,
)
from tests.appengine.test_installs import KEY
from vulcano.lab.installer import InstallerServer, installer_server
from vulcano.lab.loopback_http import Answer, get_from, watch_url
from vulcano.lab.poll import wait_for
from vulcano.lab.services import DatastoreEmulator
from vulcano.lab.wsgi import WsgiServer

pytest_plugins = ("tests.appengine.discovery_fixtures",)

MAX_WATCHES = limits.DISCOVERY_WATCHES_PER_PROCESS
# A page must answer well inside the time a watch waits; it is not a latency bound.
PAGE_TIMEOUT = 10
WATCH_TIMEOUT = "40"
# Time for the first watch to take its slot before probing; the probe never takes one.
SETTLE = 1.0


@pytest.fixture
def server(datastore: DatastoreEmulator, tmp_path: Path) -> Iterator[InstallerServer]:
    with installer_server(
        datastore,
        tmp_path / "gunicorn.log",
        workers=1,
        threads=8,
        validate="off",
        env_extra={"VULCANO_DISCOVERY_WATCH_TIMEOUT": WATCH_TIMEOUT},
    ) as running:
        yield running


def _new(server: InstallerServer, size: int, source: str) -> str:
    answer = get_from(source, f"{server.url}/new?size={size}", timeout=PAGE_TIMEOUT)
    assert answer.status == 200, answer.body
    return answer.body.decode()


def _permalink(server: InstallerServer) -> str:
    session = requests.Session()
    page = session.get(server.url + "/", timeout=PAGE_TIMEOUT)
    csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    form = {
        "csrf_token": csrf,
        "cluster_name": "busy",
        "ssh_keys": KEY,
        "flavour": "cloud-init",
        "image": "ghcr.io/vulcano/provisioner:1.0",
        "size": "3",
    }
    made = session.post(server.url + "/installs", data=form, timeout=PAGE_TIMEOUT)
    assert made.status_code == 200, made.text
    manage = made.url.rsplit("/", 1)[1]
    return f"{server.url}/cloud-config/{read_token(manage)}"


def _register(server: InstallerServer, directory: str, member_id: str) -> None:
    answer = requests.put(
        f"{directory}/{member_id}?prevExist=false",
        data={"value": f"m{member_id}=http://10.0.0.1:2380"},
        timeout=PAGE_TIMEOUT,
    )
    assert answer.status_code == 201, answer.text


@pytest.mark.slow
def test_pages_answer_while_the_most_watches_wait(server: InstallerServer) -> None:
    permalink = _permalink(server)
    single = _new(server, 1, "127.0.0.2")  # the first watch's token: probes meet it full
    shared = _new(server, MAX_WATCHES - 1, "127.0.0.3")
    sources = [f"127.0.1.{i + 1}" for i in range(MAX_WATCHES)]
    with concurrent.futures.ThreadPoolExecutor(MAX_WATCHES) as pool:
        first = pool.submit(get_from, sources[0], watch_url(server.url, single))
        time.sleep(SETTLE)
        rest = [
            pool.submit(get_from, source, watch_url(server.url, shared)) for source in sources[1:]
        ]

        # A probe on the full single-member token is refused either way, never held.
        deadline = time.monotonic() + PAGE_TIMEOUT
        while True:
            probe = get_from("127.0.2.1", watch_url(server.url, single), timeout=PAGE_TIMEOUT)
            assert probe.status == 503, probe.body
            cause = probe.json()["cause"]
            if "on this server" in cause or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert cause == (
            f"discovery watches: at most {MAX_WATCHES} wait at once on this server; try again"
        )
        assert probe.headers["Retry-After"] == str(limits.DISCOVERY_WATCH_RETRY_AFTER)
        assert not first.done() and not any(f.done() for f in rest)

        front = requests.get(server.url + "/", timeout=PAGE_TIMEOUT)
        assert front.status_code == 200 and "Install a Vulcano cluster" in front.text
        document = requests.get(permalink, timeout=PAGE_TIMEOUT)
        assert document.status_code == 200 and document.text.startswith("#cloud-config")
        assert not first.done() and not any(f.done() for f in rest)

        # A registration (same worker) wakes the watches: each sees the new member.
        _register(server, single, "a1")
        _register(server, shared, "b1")
        answers: list[Answer] = [first.result(), *(f.result() for f in rest)]
    for answer in answers:
        assert answer.status == 200, answer.body
        assert answer.json()["action"] == "create"


@pytest.mark.slow
def test_etcd_members_whose_watches_are_refused_retry_and_form_the_cluster(
    datastore: DatastoreEmulator, members: MemberFactory
) -> None:
    # One watch may wait: another member's watch is refused with the 503 etcd retries.
    app = make_app(DATASTORE_PROJECT=datastore.project, DISCOVERY_WATCHES_PER_PROCESS=1)
    refused_before = watch_slots.refused
    with WsgiServer(app) as discovery:
        url = new_discovery_url(discovery, 3)
        cluster = [members(f"m{i}", "--discovery", url) for i in range(3)]
        for member in cluster[:2]:
            member.start()
        # Both wait for a third member; only one of their watches gets the slot.
        wait_for(lambda: watch_slots.refused > refused_before, 60, "a refused watch")
        start_all(cluster)
        for member in cluster:
            assert member_names(member) == ["m0", "m1", "m2"]
