"""The service layer's cluster connection: bad addresses, unreachable etcd, closing."""

from __future__ import annotations

import etcd3
import pytest

from container.services import machines
from container.services.cluster import Cluster
from container.services.errors import ClusterAddressError, ClusterUnavailable
from tests.container.conftest import MACHINE, announce
from vulcano.lab.ports import reserve_port
from vulcano.lab.services import Etcd


@pytest.mark.parametrize(
    ("endpoints", "prefix", "message"),
    [
        ("ftp://x", "/vulcano/", "scheme must be http"),
        ("http://127.0.0.1:2379", "vulcano", "must start and end with '/'"),
        ("", "/vulcano/", "no etcd endpoint given"),
    ],
)
def test_a_bad_address_is_refused_before_any_request(
    endpoints: str, prefix: str, message: str
) -> None:
    with Cluster(endpoints, prefix) as cluster, pytest.raises(ClusterAddressError, match=message):
        machines.list_machines(cluster)


def test_unreachable_etcd_is_cluster_unavailable() -> None:
    with (
        Cluster(f"http://127.0.0.1:{reserve_port()}", timeout=1) as cluster,
        pytest.raises(ClusterUnavailable, match=r"^etcd: "),
    ):
        machines.list_machines(cluster)


def test_a_closed_cluster_connects_again_on_next_use(etcd: Etcd, client: etcd3.Etcd3Client) -> None:
    announce(client)
    cluster = Cluster(etcd.endpoint)
    cluster.close()  # never opened: nothing to do
    assert [m.id for m in machines.list_machines(cluster)] == [MACHINE.id]
    cluster.close()
    assert [m.id for m in machines.list_machines(cluster)] == [MACHINE.id]
    cluster.close()


def test_units_live_under_the_cluster_prefix(etcd: Etcd, client: etcd3.Etcd3Client) -> None:
    client.put("/other/machines/abc", '{"id": "abc"}')
    with Cluster(etcd.endpoint, "/other/") as other, Cluster(etcd.endpoint) as default:
        assert [m.id for m in machines.list_machines(other)] == ["abc"]
        assert machines.list_machines(default) == []
