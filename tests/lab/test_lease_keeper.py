"""vulcano/lab/leases.py against a real etcd: many leases kept on one stream."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from vulcano.etcd import connect
from vulcano.lab import services
from vulcano.lab.cluster import Member
from vulcano.lab.leases import LeaseKeeper
from vulcano.lab.poll import wait_for

TTL = 2


def test_shared_keepalives_hold_every_lease_and_a_paused_one_expires(
    etcd: services.Etcd, tmp_path: Path
) -> None:
    client: Any = connect(etcd.endpoint)
    keeper = LeaseKeeper(client, TTL / 3)
    members = [
        Member(etcd.endpoint, f"kept{i}", tmp_path / str(i), ttl=TTL, client=client, keeper=keeper)
        for i in range(20)
    ]
    try:
        for m in members:
            m.start()
        members[0].pause()
        wait_for(lambda: client.get(members[0].keyspace.machine("kept0"))[0] is None, 10, "expiry")
        time.sleep(TTL)  # the others have outlived their TTL by now
        for m in members[1:]:
            assert client.get(m.keyspace.machine(m.machine_id))[0] is not None
            assert m.lease_deadline() > time.monotonic()  # confirmed by the keeper
        assert members[0].lease_deadline() < time.monotonic()
    finally:
        keeper.close()
        for m in members:
            m.close()
        client.close()
