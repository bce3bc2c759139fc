"""Audit fixtures: a container database in the test's state dir, and an audited Cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from container.services.audit import Actor, AuditLog
from container.services.cluster import Cluster
from container.store import open_store
from vulcano.lab.services import Etcd

ALICE = Actor("alice", "panel")


@pytest.fixture
def audit_log(state_dir: Path) -> AuditLog:
    state_dir.mkdir(parents=True, exist_ok=True)
    return AuditLog(open_store(state_dir))


@pytest.fixture
def audited(etcd: Etcd, audit_log: AuditLog) -> Iterator[Cluster]:
    """The test etcd, every change through it recorded as ALICE's."""
    with Cluster(etcd.endpoint, audit=audit_log, actor=ALICE, name="test") as c:
        yield c
