"""Real etcd 3.4 members find each other through the installer's discovery service."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import require
from tests.support.services import Etcd, new_etcd, wait_until
from tests.support.wsgi_server import WsgiServer

pytest_plugins = ("tests.appengine.discovery_fixtures",)

ETCDCTL_TIMEOUT = 15
START_TIMEOUT = 60

MemberFactory = Callable[..., Etcd]


@pytest.fixture
def members(tmp_path: Path) -> Iterator[MemberFactory]:
    """Make etcd members bootstrapped through a discovery URL; all stopped at teardown."""
    require(subprocess.run(["which", "etcd"], capture_output=True).returncode == 0, "needs etcd")
    started: list[Etcd] = []

    def make(name: str, discovery: str, *extra: str) -> Etcd:
        member = new_etcd(tmp_path, name, extra_args=["--discovery", discovery, *extra])
        started.append(member)
        return member

    yield make
    for member in started:
        member.stop()


def new_discovery_url(server: WsgiServer, size: int) -> str:
    answer = requests.get(f"{server.url}/new", params={"size": size}, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.text


def etcdctl(member: Etcd, *args: str) -> str:
    done = subprocess.run(
        ["etcdctl", "--endpoints", member.client_url, "--command-timeout=10s", *args],
        capture_output=True,
        text=True,
        timeout=ETCDCTL_TIMEOUT,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def member_names(member: Etcd) -> list[str]:
    listing = json.loads(etcdctl(member, "member", "list", "-w", "json"))
    return sorted(m.get("name", "") for m in listing["members"])


def start_cluster(members: MemberFactory, url: str, size: int) -> list[Etcd]:
    cluster = [members(f"m{i}", url) for i in range(size)]
    for member in cluster:
        member.start()
    for member in cluster:
        try:
            member.wait_healthy(START_TIMEOUT)
        except TimeoutError:
            pytest.fail(f"{member.name} never became healthy; its log:\n{member.log()[-3000:]}")
    return cluster


@pytest.mark.slow
@pytest.mark.parametrize("size", [1, 3, 5])
def test_members_form_one_cluster_through_the_installer(
    installer_server: WsgiServer, members: MemberFactory, size: int
) -> None:
    url = new_discovery_url(installer_server, size)
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
    installer_server: WsgiServer, members: MemberFactory
) -> None:
    url = new_discovery_url(installer_server, 3)
    cluster = start_cluster(members, url, 3)
    before = registered(installer_server, url)
    restarted = cluster[1]
    restarted.stop()
    etcdctl(cluster[0], "put", "/while-away", "missed")
    restarted.start()
    restarted.wait_healthy(START_TIMEOUT)
    assert member_names(restarted) == ["m0", "m1", "m2"]
    assert etcdctl(restarted, "get", "/while-away", "--print-value-only").strip() == "missed"
    assert registered(installer_server, url) == before


@pytest.mark.slow
def test_member_beyond_the_size_falls_back_to_proxy_and_the_cluster_is_unharmed(
    installer_server: WsgiServer, members: MemberFactory
) -> None:
    url = new_discovery_url(installer_server, 3)
    cluster = start_cluster(members, url, 3)
    ids = registered(installer_server, url)
    extra = members("extra", url)
    extra.start()
    # The proxy learns the members' client URLs from the discovery directory and forwards.
    wait_until(
        lambda: requests.get(f"{extra.client_url}/version", timeout=2).ok,
        START_TIMEOUT,
        f"the extra member's proxy; its log:\n{extra.log()[-2000:]}",
    )
    assert "falling back to proxy" in extra.log()
    assert extra.proc is not None and extra.proc.poll() is None
    assert member_names(cluster[0]) == ["m0", "m1", "m2"]
    etcdctl(cluster[2], "put", "/after-extra", "fine")
    assert etcdctl(cluster[0], "get", "/after-extra", "--print-value-only").strip() == "fine"
    assert registered(installer_server, url) == ids


@pytest.mark.slow
def test_member_beyond_the_size_exits_with_fallback_exit_and_the_cluster_is_unharmed(
    installer_server: WsgiServer, members: MemberFactory
) -> None:
    url = new_discovery_url(installer_server, 3)
    cluster = start_cluster(members, url, 3)
    extra = members("extra", url, "--discovery-fallback", "exit")
    extra.start()
    ids = registered(installer_server, url)
    assert extra.proc is not None
    assert extra.proc.wait(START_TIMEOUT) != 0
    assert "cluster is full" in extra.log()
    assert member_names(cluster[0]) == ["m0", "m1", "m2"]
    etcdctl(cluster[1], "put", "/after-extra", "fine")
    assert etcdctl(cluster[2], "get", "/after-extra", "--print-value-only").strip() == "fine"
    assert registered(installer_server, url) == ids


@pytest.mark.slow
def test_two_members_starting_at_the_same_instant_both_get_in(
    installer_server: WsgiServer, members: MemberFactory
) -> None:
    url = new_discovery_url(installer_server, 2)
    cluster = start_cluster(members, url, 2)
    assert member_names(cluster[1]) == ["m0", "m1"]
    assert len(registered(installer_server, url)) == 2
