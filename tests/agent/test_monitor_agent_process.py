"""A real `vulcano-agent run` in a test host publishes its samples; killed, it turns down."""

from __future__ import annotations

import time
from typing import Any

import pytest

from container.services import monitor
from container.services.cluster import Cluster
from vulcano.heartbeat import MachineHealth, MachineSample
from vulcano.keyspace import Keyspace
from vulcano.lab.netns import Underlay
from vulcano.lab.poll import wait_for

pytestmark = pytest.mark.root
KS = Keyspace()
INTERVAL = 5.0


def sample_of(client: Any, machine_id: str) -> tuple[MachineSample | None, int]:
    value, meta = client.get(KS.sample(machine_id))
    return (MachineSample.from_json(value), meta.lease_id) if value is not None else (None, 0)


def test_a_killed_agents_sample_lapses_with_its_lease_and_the_summary_says_down(
    underlay: Underlay,
) -> None:
    host = underlay.add_host()
    underlay.init_network("10.244.0.0/16", 24)
    host.start_agent("--sample-interval", "1", ttl=3, subnet_ttl=60)
    host.wait_overlay()
    client = underlay.etcd_client()
    try:
        sample, lease = wait_for(
            lambda: (found := sample_of(client, host.machine_id))[0] is not None and found,
            10,
            "the agent's first sample",
        )
        assert lease == client.get(KS.machine(host.machine_id))[1].lease_id
        assert sample.public_ip == host.ip and sample.mem_total > 0 and sample.disk_total > 0
        wait_for(lambda: (s := sample_of(client, host.machine_id)[0]) is not None
                 and s.at > sample.at, 10, "the next sample")  # fmt: skip
        with Cluster(underlay.etcd_local_endpoint) as cluster:
            up = monitor.summarize(cluster, "lab", seq=1, interval=INTERVAL, now=time.time())
            assert [(m.machine_id, m.health) for m in up.machines] == [
                (host.machine_id, MachineHealth.UP)
            ]
            host.kill_agent()  # SIGKILL: no clean stop, the lease runs out
            wait_for(lambda: sample_of(client, host.machine_id)[0] is None, 8, "sample lapsed")
            down = monitor.summarize(cluster, "lab", seq=2, interval=INTERVAL, now=time.time())
            # its record went with the lease; its subnet lease says it was there
            assert [(m.machine_id, m.health) for m in down.machines] == [
                (host.machine_id, MachineHealth.DOWN)
            ]
    finally:
        client.close()
