"""The balancer in front of whole agents: web@1..3 in sandboxes on three network-namespace
hosts with their health checks, the endpoints those agents publish, and
`vulcano-agent balancer` run as a unit pinned to one host, with nginx and with HAProxy.

Requests go through the balancer from the test process (a loopback forward into the
balancer's host) in a loop that counts every answer and every failure.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from tests.agent.fleet import Fleet
from tests.agent.test_services_netns import _web_unit
from vulcano.lab.balancer import ClientLoop
from vulcano.lab.poll import wait_for
from vulcano.records import BalancerStatus

pytestmark = [pytest.mark.root, pytest.mark.slow]
LISTEN = 8088
WAIT = 30.0
WEBS = [f"web@{i}.service" for i in (1, 2, 3)]


def _balancer_unit(fleet: Fleet, kind: str) -> str:
    state = fleet.dir / f"balancer-{kind}"
    return (
        f"[Service]\nExecStart={sys.executable} -m agent balancer "
        f"--etcd-endpoints {fleet.net.etcd_endpoint} --machine-id %m --for web@ "
        f"--listen :{LISTEN} --kind {kind} --state-dir {state} --settle 500ms "
        f"--name {fleet.marker}\n\n[X-Fleet]\nMachineID={fleet.hosts[0].machine_id}\n"
    )


def _status(fleet: Fleet) -> BalancerStatus | None:
    found = list(fleet.store.client.get_prefix(fleet.store.ks.balancers))
    return BalancerStatus.from_json(found[0][0]) if found else None


def _serving(fleet: Fleet, count: int) -> BalancerStatus | None:
    status = _status(fleet)
    return status if status and status.status == "ok" and len(status.backends) == count else None


@pytest.mark.parametrize("kind", ["nginx", "haproxy"])
def test_three_instances_behind_a_balancer_unit_one_dies_and_comes_back(
    fleet: Fleet, kind: str
) -> None:
    web = fleet.unit_file("web@.service", _web_unit(fleet))
    balancer = fleet.unit_file("balancer.service", _balancer_unit(fleet, kind))
    assert fleet.cli("submit", web, balancer).exit_code == 0
    started = fleet.cli("start", "--block-timeout", str(WAIT), *WEBS, "balancer.service")
    assert started.exit_code == 0, started.output
    wait_for(lambda: _serving(fleet, 3), WAIT, "the balancer serving three instances", 0.2)

    with fleet.hosts[0].forward(LISTEN) as forward, ClientLoop("127.0.0.1", forward.port) as load:
        # Requests spread over all three instances, on three machines.
        began = time.monotonic()
        load.wait_answers(60)
        answered = load.answered_by_since(began)
        assert {f"hello from {w}" for w in WEBS} == set(answered), answered
        assert load.failures_since(began) == []

        # One instance dies (SIGKILL, no goodbye): its agent withdraws its endpoint and the
        # balancer drops it; from the moment it says so, no request fails.
        [pid] = fleet.pids("web@2.service")
        os.kill(pid, signal.SIGKILL)
        died = time.monotonic()
        status = wait_for(lambda: _serving(fleet, 2), WAIT, "the dead instance dropped", 0.05)
        dropped = time.monotonic()
        print(f"{kind}: instance killed → out of rotation in {dropped - died:.2f}s")
        load.wait_answers(60)
        assert load.failures_since(dropped) == [], load.failures_since(dropped)
        assert "hello from web@2.service" not in load.answered_by_since(dropped)
        assert status.reloads + status.runtime_changes >= 1

        # It comes back (started again): it rejoins the rotation.
        restarted = fleet.cli("start", "--block-timeout", str(WAIT), "web@2.service")
        assert restarted.exit_code == 0, restarted.output
        wait_for(lambda: _serving(fleet, 3), WAIT, "the instance back in rotation", 0.2)
        back = time.monotonic()
        wait_for(
            lambda: "hello from web@2.service" in load.answered_by_since(back),
            WAIT, "an answer from the returned instance", 0.2,
        )  # fmt: skip
        assert load.failures_since(back) == []
