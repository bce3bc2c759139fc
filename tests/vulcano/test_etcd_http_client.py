"""The agent's etcd client over etcd's JSON gateway (`vulcano.etcdhttp`) against the real
etcd 3.4: the results the shared code reads, the same as python-etcd3's; transaction
compares that hold and that do not; leases that expire; failover when a member of three
stops; over mutual TLS, a revoked certificate refused and renewed files taken; and a
member serving no JSON gateway named so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from vulcano import etcd as vulcano_etcd
from vulcano import etcdhttp, pki
from vulcano.etcd import EtcdRefused, TLSFiles, lease_compare
from vulcano.lab import services
from vulcano.lab.poll import wait_for
from vulcano.watch import PrefixWatch, Resync, current_revision, snapshot

P = "/httptest/"


@pytest.fixture
def client(etcd: services.Etcd) -> Iterator[etcdhttp.HttpClient]:
    c = etcdhttp.connect(etcd.endpoint)
    yield c
    c.close()


@pytest.fixture
def grpc_client(etcd: services.Etcd) -> Iterator[Any]:
    c = vulcano_etcd.connect(etcd.endpoint)
    yield c
    c.close()


def meta_of(meta: Any) -> tuple[Any, ...]:
    return (meta.key, meta.create_revision, meta.mod_revision, meta.version, meta.lease_id)


def test_reads_give_what_python_etcd3_gives(client: Any, grpc_client: Any) -> None:
    lease = client.lease(30)
    client.put(P + "a", "1")
    client.put(P + "b", b"\x00\xffbinary", lease=lease.id)
    client.put(P + "a", "2")
    for key in (P + "a", P + "b", P + "absent"):
        value, meta = client.get(key)
        grpc_value, grpc_meta = grpc_client.get(key)
        assert value == grpc_value
        assert (meta is None) == (grpc_meta is None)
        if meta is not None:
            assert meta_of(meta) == meta_of(grpc_meta)
    for kwargs in ({}, {"keys_only": True}):
        got = [(v, meta_of(m)) for v, m in client.get_prefix(P, **kwargs)]
        want = [(v, meta_of(m)) for v, m in grpc_client.get_prefix(P, **kwargs)]
        assert got == want and len(got) == 2
    assert client.get(P + "b")[1].lease_id == lease.id
    assert client.count_prefix(P) == 2
    header = client.get_prefix_response(P).header
    assert header.revision == grpc_client.get_prefix_response(P).header.revision
    assert client.delete(P + "a") is True and client.delete(P + "a") is False
    assert client.status().version.startswith("3.4")


def test_transaction_compares_hold_or_fail_on_every_target(client: Any) -> None:
    t = client.transactions
    lease = client.lease(30)
    ok, _ = client.transaction(
        compare=[t.version(P + "k") == 0], success=[t.put(P + "k", "v", lease=lease)]
    )
    assert ok
    _, meta = client.get(P + "k")
    holds = [
        t.value(P + "k") == "v",
        t.version(P + "k") == 1,
        t.mod(P + "k") == meta.mod_revision,
        t.create(P + "k") == meta.create_revision,
        t.version(P + "k") > 0,
        t.mod(P + "k") < meta.mod_revision + 1,
        t.value(P + "k") != "w",
        lease_compare(client, P + "k") == lease.id,
        t.mod(P, b"/httptest0") < meta.mod_revision + 1,  # over a range
    ]
    fails = [
        t.value(P + "k") == "w",
        t.version(P + "k") == 0,
        t.mod(P + "k") == meta.mod_revision + 1,
        t.create(P + "k") != meta.create_revision,
        lease_compare(client, P + "k") == 0,
    ]
    for compare in holds:
        ok, responses = client.transaction(
            compare=[compare], success=[t.get(P + "k")], failure=[t.put(P + "lost", "x")]
        )
        assert ok, compare
        [[(value, got)]] = responses
        assert value == b"v" and got.mod_revision == meta.mod_revision
    for compare in fails:
        ok, responses = client.transaction(
            compare=[compare], success=[t.put(P + "won", "x")], failure=[t.delete(P + "none")]
        )
        assert not ok, compare
        assert responses[0].deleted == 0
    assert client.get(P + "won") == (None, None) and client.get(P + "lost") == (None, None)
    ok, responses = client.transaction(
        compare=[], success=[t.delete(P, b"/httptest0"), t.get(P + "k")], failure=[]
    )
    assert ok and responses[0].deleted == 1 and responses[1] == []


def test_a_lease_expires_with_its_keys_unless_refreshed(client: Any) -> None:
    kept, lapsed = client.lease(2), client.lease(2)
    client.put(P + "kept", "1", lease=kept)
    client.put(P + "lapsed", "1", lease=lapsed.id)
    info = client.get_lease_info(lapsed.id)
    assert info.grantedTTL == 2 and 0 < info.TTL <= 2 and info.keys == [b"/httptest/lapsed"]

    def lapsed_gone() -> bool:
        [refreshed] = kept.refresh()
        assert refreshed.TTL > 0
        return client.get(P + "lapsed") == (None, None)

    wait_for(lapsed_gone, 15, "the lease to expire")
    assert client.get_lease_info(lapsed.id).TTL == -1
    assert vulcano_etcd.refresh_lease(client, lapsed.id) == 0
    assert client.get(P + "kept")[0] == b"1"
    kept.revoke()
    assert client.get(P + "kept") == (None, None)


def test_a_watch_from_a_revision_then_compaction_is_a_resync(client: Any) -> None:
    client.put(P + "a", "1")
    revision, [[before]] = snapshot(client, [P])
    assert before.key == P + "a" and before.value == b"1"
    client.put(P + "a", "2")
    client.delete(P + "a")
    watch = PrefixWatch(client, [P], revision + 1)
    try:
        first = watch.events.get(timeout=10)
        second = first if len(first) == 2 else [*first, *watch.events.get(timeout=10)]
        assert [(c.key, c.value) for c in second] == [(P + "a", b"2"), (P + "a", None)]
    finally:
        watch.cancel()
    client.compact(current_revision(client))
    watch = PrefixWatch(client, [P], revision + 1)
    try:
        item = watch.events.get(timeout=10)
        assert isinstance(item, Resync) and "compacted" in str(item)
    finally:
        watch.cancel()


def test_requests_fail_over_when_a_member_of_three_stops(
    etcd_members: services.EtcdCluster,
) -> None:
    client = etcdhttp.connect(etcd_members.endpoints)
    try:
        client.put(P + "k", "1")
        first = etcd_members.members[0]
        first.stop()  # the member the client asks first
        for i in range(10):
            client.put(P + "k", str(i))  # each one answered by another member
            assert client.get(P + "k")[0] == str(i).encode()
        revision = current_revision(client)
        watch = PrefixWatch(client, [P], revision + 1)
        try:
            client.put(P + "w", "1")
            [change] = watch.events.get(timeout=10)
            assert change.key == P + "w"
        finally:
            watch.cancel()
        for member in etcd_members.running():
            member.stop()
        with pytest.raises(vulcano_etcd.EtcdUnavailable) as caught:
            client.get(P + "k")
        for member in etcd_members.members:
            assert member.endpoint in str(caught.value)
    finally:
        client.close()


def test_a_revoked_certificate_is_refused_and_renewed_files_are_taken(tmp_path: Path) -> None:
    tls = services.EtcdTLS.make(tmp_path / "tls")
    crl = tmp_path / "crl.pem"
    pki.write_pem(crl, pki.new_crl(tls.ca, []), private=False)
    etcd = services.new_etcd(tmp_path, tls=tls, extra_args=[f"--client-crl-file={crl}"])
    first = pki.issue(tls.ca, "node", "client")
    cert, key = pki.write_issued(tmp_path, "first", first)
    etcd.start()
    client = etcdhttp.connect(etcd.endpoint, tls=TLSFiles(tls.cacert, cert, key))
    try:
        etcd.wait_healthy()
        client.put(P + "k", "1")
        watch = PrefixWatch(client, [P], current_revision(client) + 1)
        client.put(P + "opened", "1")  # its event: the watch's connection is made, admitted
        [opened] = watch.events.get(timeout=10)
        assert opened.key == P + "opened"
        pki.write_pem(crl, pki.new_crl(tls.ca, [first.cert.serial_number]), private=False)
        client.close()  # its kept-alive connections were admitted before the revocation
        with pytest.raises(EtcdRefused, match="revoked"):
            client.get(P + "k")
        renewed, renewed_key = pki.write_issued(
            tmp_path, "renewed", pki.issue(tls.ca, "node", "client")
        )
        client.reload_tls(TLSFiles(tls.cacert, renewed, renewed_key))
        assert client.get(P + "k")[0] == b"1"
        # the watch's connection, made before, is not cut by a new CRL: it still delivers
        client.put(P + "w", "1")
        [change] = watch.events.get(timeout=10)
        assert change.key == P + "w"
        watch.cancel()
    finally:
        client.close()
        etcd.stop()


def test_a_member_without_its_json_gateway_is_named_so(tmp_path: Path) -> None:
    """etcd 3.4 read from a config file without enable-grpc-gateway serves no gateway."""
    etcd = services.new_etcd(tmp_path, extra_args=["--enable-grpc-gateway=false"])
    etcd.start()
    client = etcdhttp.connect(etcd.endpoint)
    try:
        wait_for(lambda: _status_served(etcd), 30, "etcd up")
        with pytest.raises(vulcano_etcd.EtcdUnavailable, match="enable-grpc-gateway: true"):
            client.get(P + "k")
    finally:
        client.close()
        etcd.stop()


def _status_served(etcd: services.Etcd) -> bool:
    try:
        return requests.get(f"{etcd.endpoint}/version", timeout=1).status_code == 200
    except requests.RequestException:
        return False
