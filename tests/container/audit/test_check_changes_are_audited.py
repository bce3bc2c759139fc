"""`check add` and `check remove` are audited after etcd took them; a refused one is not."""

from __future__ import annotations

import pytest

from container.services import checks, units
from container.services.audit import AuditLog
from container.services.cluster import Cluster
from container.services.errors import CheckConflict
from vulcano.records import UnitSource

WEB = "[Service]\nExecStart=/bin/sleep 1000\n\n[X-Vulcano]\nCheck=tcp :80 name=alive\n"


def test_check_changes_are_recorded_and_refusals_are_not(
    audited: Cluster, audit_log: AuditLog
) -> None:
    units.submit(audited, [UnitSource("web.service", WEB)])
    checks.add_check(audited, "web.service", "http :8080/ready interval=2s", "ready")
    with pytest.raises(CheckConflict, match="declares check alive"):
        checks.add_check(audited, "web.service", "tcp :81", "alive")
    with pytest.raises(CheckConflict, match="declared in its unit file"):
        checks.remove_check(audited, "web.service", "alive")
    checks.remove_check(audited, "web.service", "ready")
    entries = [(e.action, e.target, e.detail) for e in audit_log.entries(limit=10)]
    assert [e for e in entries if e[0].startswith("check")] == [
        ("check add", "web.service", "ready: http :8080/ready name=ready interval=2s"),
        ("check remove", "web.service", "ready"),
    ]
