"""Real etcd 3.4 members find each other through the installer's discovery service."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import require
from tests.support.services import Etcd, new_etcd
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
