"""Relay fixtures: a store in a temp state dir, a receiver on loopback, a token file."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from container.services.relay import RelayTarget
from container.store.db import Store, open_store
from tests.container.relay.receiver import Receiver, receiving
from vulcano.heartbeat import ClusterSummary, MachineHealth, MachineSummary

# The shape the installer hands out: <install id (hex SHA-256)>.<43 url-safe chars>.
TOKEN = "0123456789abcdef" * 4 + ".Tq0-Vn3r_" + "x" * 34


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(tmp_path)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


@pytest.fixture
def target(receiver: Receiver) -> RelayTarget:
    return RelayTarget(receiver.url, TOKEN)


def summarize(seq: int) -> ClusterSummary:
    machine = MachineSummary("m1", MachineHealth.UP, last_seen=time.time())
    return ClusterSummary("prod", seq, time.time(), 60.0, machines=[machine])
