"""Fixtures for overlay tests: test hosts on an underlay with a real etcd."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.fleet import Fleet, running_fleet
from tests.conftest import print_logs_if_failed, require_root
from vulcano.lab.netns import Underlay


@pytest.fixture
def underlay(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Underlay]:
    """A fresh underlay bridge with its own etcd; hosts are added by the test (their
    agents' logs printed when it fails)."""
    require_root()
    with Underlay(tmp_path / "underlay") as net:
        try:
            yield net
        finally:
            print_logs_if_failed(request, net.base.glob("agent-*.log"))


@pytest.fixture(scope="module")
def mesh3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Underlay]:
    """Three hosts with running agents and one sandbox ("a") each; for read-only tests."""
    require_root()
    with Underlay(tmp_path_factory.mktemp("mesh3")) as net:
        hosts = net.add_hosts(3)
        net.init_network("10.244.0.0/16", 24)
        net.start_agents(hosts)
        for host in hosts:
            host.create_sandbox("a")
        yield net


@pytest.fixture
def fleet(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Fleet]:
    """Three whole agents on netns hosts and the `vulcano` CLI (tests/agent/fleet.py);
    the agents' logs are printed when the test fails."""
    require_root()
    with running_fleet(tmp_path) as f:
        try:
            yield f
        finally:
            print_logs_if_failed(request, f.net.base.glob("agent-*.log"))
