"""The machines page: each machine's standing, metadata, subnet and when last heard from."""

from __future__ import annotations

import json
import re
import time

import etcd3
import pytest

from container.services import inventory
from container.services.cluster import Cluster
from container.store import Store
from tests.container.panel.conftest import Browser, add_cluster
from tests.container.panel.lab import Lab
from vulcano.keyspace import Keyspace
from vulcano.lab.ports import reserve_port
from vulcano.lab.services import Etcd

KS = Keyspace()


def lease_subnet(lab: Lab, cidr: str, machine_id: str) -> None:
    """A subnet lease as the machine's overlay takes it (flannel's record, our names)."""
    record = {"machine_id": machine_id, "public_ip": "192.0.2.9", "backend_type": "vxlan",
              "vtep_mac": "02:00:00:00:00:09"}  # fmt: skip
    lab.registry.client.put(KS.subnet(cidr), json.dumps(record))


def row(page: str, machine_id: str) -> str:
    return page.split(f'<tr data-machine="{machine_id}">', 1)[1].split("</tr>", 1)[0]


def test_every_machine_shows_its_standing_metadata_subnet_and_last_seen(
    admin: Browser, lab_cluster: str, lab: Lab
) -> None:
    first, second = (n.member.machine_id for n in lab.nodes)
    lease_subnet(lab, "10.244.3.0/24", first)
    page = admin.get("/clusters/lab/machines").text
    mine = row(page, first)
    assert '<span class="state up">up</span>' in mine
    assert "<code>10.244.3.0/24</code>" in mine
    assert "<code>region=eu</code>" in mine
    assert re.search(r"\d+ s ago", mine)
    assert "lease of 3 s" in mine
    assert '<span class="muted">none</span>' in row(page, second)  # no subnet yet


def test_a_machine_gone_but_still_holding_a_subnet_is_shown_gone(
    admin: Browser, lab_cluster: str, lab: Lab
) -> None:
    lease_subnet(lab, "10.244.9.0/24", "deadbeef01")
    mine = row(admin.get("/clusters/lab/machines").text, "deadbeef01")
    assert '<span class="state gone">gone</span>' in mine
    assert "10.244.9.0/24" in mine


def test_last_seen_comes_from_the_agents_lease(lab_cluster: str, lab: Lab, etcd: Etcd) -> None:
    with Cluster(etcd.endpoint) as cluster:
        rows = inventory.machine_rows(cluster)
    assert [r.id for r in rows] == sorted(n.member.machine_id for n in lab.nodes)
    for r in rows:
        assert r.standing == inventory.UP
        assert r.lease_ttl == 3
        assert r.last_seen is not None
        assert time.time() - 4 <= r.last_seen <= time.time()


def test_a_cluster_with_no_machines_says_how_to_get_some(admin: Browser, lab_cluster: str) -> None:
    page = admin.get("/clusters/lab/machines").text
    assert 'id="no-machines"' in page
    assert 'href="/clusters/lab/user-data"' in page


def test_a_restarting_machine_is_shown_restarting(
    admin: Browser, lab_cluster: str, etcd: Etcd
) -> None:
    host, port = etcd.host_port
    client = etcd3.client(host=host, port=port, timeout=5)
    try:
        lease = client.lease(30)
        client.put(KS.machine("cafe0001"), '{"id": "cafe0001"}', lease=lease)
        client.put(KS.machine_restarting("cafe0001"), "1", lease=lease)
        page = admin.get("/clusters/lab/machines").text
    finally:
        client.close()
    assert '<span class="state restarting">restarting</span>' in row(page, "cafe0001")


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_cluster_whose_etcd_does_not_answer_is_a_503_saying_so(
    admin: Browser, store: Store
) -> None:
    add_cluster(store, "dark", f"http://127.0.0.1:{reserve_port()}")
    answer = admin.get("/clusters/dark/machines")
    assert answer.status_code == 503
    assert "etcd did not answer" in answer.text
