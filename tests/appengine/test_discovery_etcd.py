"""Real etcd 3.4 members find each other through the installer's discovery service."""

from __future__ import annotations

import pytest
import requests

from tests.appengine.discovery_helpers import (
    START_TIMEOUT,
    MemberFactory,
    etcdctl,
    member_names,
    new_discovery_url,
    start_all,
)
from vulcano.lab.poll import wait_for
from vulcano.lab.services import Etcd
from vulcano.lab.wsgi import WsgiServer

pytest_plugins = ("tests.appengine.discovery_fixtures",)


def start_cluster(members: MemberFactory, url: str, size: int) -> list[Etcd]:
    cluster = [members(f"m{i}", "--discovery", url) for i in range(size)]
    start_all(cluster)
    return cluster


@pytest.mark.slow
@pytest.mark.parametrize("size", [1, 3, 5])
def test_members_form_one_cluster_through_the_installer(
    discovery_server: WsgiServer, members: MemberFactory, size: int
) -> None:
    url = new_discovery_url(discovery_server, size)
    cluster = start_cluster(members, url, size)
    expected = sorted(m.name for m in cluster)
    for member in cluster:
        assert member_names(member) == expected
    etcdctl(cluster[0], "put", "/probe", "written-on-first")
    assert etcdctl(cluster[-1], "get", "/probe", "--print-value-only").strip() == (
        "written-on-first"
    )


def registered(server: WsgiServer, url: str) -> list[str]:
    """The member ids registered under the discovery URL, in createdIndex order."""
    answer = requests.get(url.replace(url.split("/discovery/")[0], server.url), timeout=5)
    assert answer.status_code == 200, answer.text
    nodes = [n for n in answer.json()["node"]["nodes"] if not n["key"].endswith("/_config")]
    nodes.sort(key=lambda n: n["createdIndex"])
    return [n["key"].rsplit("/", 1)[1] for n in nodes]


@pytest.mark.slow
def test_restarted_member_rejoins_with_the_same_token_and_data_dir(
    discovery_server: WsgiServer, members: MemberFactory
) -> None:
    url = new_discovery_url(discovery_server, 3)
    cluster = start_cluster(members, url, 3)
    before = registered(discovery_server, url)
    restarted = cluster[1]
    restarted.stop()
    etcdctl(cluster[0], "put", "/while-away", "missed")
    restarted.start()
    restarted.wait_healthy(START_TIMEOUT)
    assert member_names(restarted) == ["m0", "m1", "m2"]
    assert etcdctl(restarted, "get", "/while-away", "--print-value-only").strip() == "missed"
    assert registered(discovery_server, url) == before


def assert_cluster_unharmed(
    cluster: list[Etcd], server: WsgiServer, url: str, ids: list[str]
) -> None:
    """The first members still form the cluster, serve writes, and no one else registered."""
    assert member_names(cluster[0]) == ["m0", "m1", "m2"]
    etcdctl(cluster[1], "put", "/after-extra", "fine")
    assert etcdctl(cluster[2], "get", "/after-extra", "--print-value-only").strip() == "fine"
    assert registered(server, url) == ids


@pytest.mark.slow
def test_member_beyond_the_size_falls_back_to_proxy_and_the_cluster_is_unharmed(
    discovery_server: WsgiServer, members: MemberFactory
) -> None:
    url = new_discovery_url(discovery_server, 3)
    cluster = start_cluster(members, url, 3)
    ids = registered(discovery_server, url)
    extra = members("extra", "--discovery", url)
    extra.start()
    # The proxy learns the members' client URLs from the discovery directory and forwards.
    wait_for(
        lambda: requests.get(f"{extra.client_url}/version", timeout=2).ok,
        START_TIMEOUT,
        f"the extra member's proxy; its log:\n{extra.log()[-2000:]}",
    )
    assert "falling back to proxy" in extra.log()
    assert extra.proc is not None and extra.proc.poll() is None
    assert_cluster_unharmed(cluster, discovery_server, url, ids)


@pytest.mark.slow
def test_member_beyond_the_size_exits_with_fallback_exit_and_the_cluster_is_unharmed(
    discovery_server: WsgiServer, members: MemberFactory
) -> None:
    url = new_discovery_url(discovery_server, 3)
    cluster = start_cluster(members, url, 3)
    extra = members("extra", "--discovery", url, "--discovery-fallback", "exit")
    extra.start()
    ids = registered(discovery_server, url)
    assert extra.proc is not None
    assert extra.proc.wait(START_TIMEOUT) != 0
    assert "cluster is full" in extra.log()
    assert_cluster_unharmed(cluster, discovery_server, url, ids)


@pytest.mark.slow
def test_two_members_starting_at_the_same_instant_both_get_in(
    discovery_server: WsgiServer, members: MemberFactory
) -> None:
    url = new_discovery_url(discovery_server, 2)
    cluster = start_cluster(members, url, 2)
    assert member_names(cluster[1]) == ["m0", "m1"]
    assert len(registered(discovery_server, url)) == 2
