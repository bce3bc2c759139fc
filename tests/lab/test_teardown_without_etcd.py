"""The lab's teardown removes the sandboxes a test agent made even when etcd is gone.

Agents name their units' sandboxes after the unit (agent.units.machine_units.sandbox_name),
not after the test run; the harness finds them in the agent's own state dir, not in etcd.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.conftest import require_root
from vulcano.lab.netns import NETNS_DIR, Underlay, _run

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_an_agents_sandboxes_go_with_its_host_after_etcd_has_stopped(tmp_path: Path) -> None:
    require_root()
    names = [f"vq{secrets.token_hex(3)}-web", f"vq{secrets.token_hex(3)}-db"]
    try:
        with Underlay(tmp_path / "net") as net:
            [host] = net.add_hosts(1)
            net.init_network("10.244.0.0/16", 24)
            host.start_agent()
            host.wait_overlay()
            for name in names:  # as the agent makes them for units: not the run's names
                made = host.cli("sandbox", "create", name)
                assert made.returncode == 0, made.stderr
            assert all((NETNS_DIR / n).exists() for n in names)
            assert host.agent_sandboxes() == sorted(names)
            assert net.etcd is not None
            net.etcd.stop()  # etcd first: nothing can be asked of it any more
            host.kill_agent()
        assert [n for n in names if (NETNS_DIR / n).exists()] == []
        assert not [e.name for e in NETNS_DIR.iterdir() if net.token in e.name]
    finally:
        for name in names:  # only if the teardown under test failed
            if (NETNS_DIR / name).exists():
                _run(["ip", "netns", "delete", name], check=False)
