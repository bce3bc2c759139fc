"""Renewal while units run and traffic crosses the overlay (issue 18): nothing stops,
nothing is lost.

A cluster made with `vulcano cluster create --tls`; its etcd (on the underlay of
network-namespace hosts) admits only clients with a certificate of the cluster's CA and
reads a CRL file on every handshake. Two whole agents (`vulcano-agent run`), each with
its node's name as hostname, start on short-lived certificates the container issued
(`clusterca.issue_node`), due for renewal a little after they start. A unit in a sandbox
on one machine streams numbered messages over one TCP connection, across the overlay,
to a unit in a sandbox on the other, which checks and echoes each one
(`vulcano.lab.stream`). The agents ask with CSRs, `vulcano cluster renew` signs them as
the relay does, and the agents install and reload them. Then the first certificates are
revoked and every etcd connection of the agents cut (`ss -K`), so they can go on only
over new connections with the renewed ones.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from agent.credentials import PENDING_KEY
from container.services import clusterca
from container.store import Store
from tests.conftest import print_logs_if_failed, require_root
from tests.container.clusters.conftest import Invoke
from vulcano import pki
from vulcano.etcd import TLSFiles
from vulcano.keyspace import Keyspace
from vulcano.lab.cluster import kill_by_pid, main_pids, pids_of
from vulcano.lab.etcdtls import EtcdTLS, handshake_admitted
from vulcano.lab.invariants import CopySampler, process_copies
from vulcano.lab.netns import ETCD_CLIENT_PORT, REPO, TestHost, Underlay
from vulcano.lab.poll import wait_for
from vulcano.registry import Registry

pytestmark = [pytest.mark.root, pytest.mark.slow]

KS = Keyspace()
NAME = "ren"
TTL = 5  # the machines' leases: short, so a lost etcd connection would show
VALIDITY = datetime.timedelta(minutes=15)  # the first certificates: expire well after
DUE_IN = datetime.timedelta(seconds=30)  # due this long after they are issued
PORT = 7100
WAIT = 60.0
SAMPLE_EVERY = 0.05  # the process sampler (its own default, 5 ms, costs a core)
MESSAGES_AFTER = 100  # messages that must cross after the cut, on the same connection
RELOADED = "TLS files changed: etcd connections use them from now on"


@dataclass
class Node:
    """One test host as a node of the cluster: its name and its TLS files."""

    host: TestHost
    name: str
    tls: TLSFiles  # where its agent reads them (renewal writes over them)
    first: TLSFiles  # copies of the first certificate and key (revoked later)

    @property
    def cert(self) -> Path:
        assert self.tls.cert is not None
        return self.tls.cert

    def serial(self) -> int:
        return pki.load_cert(self.cert.read_bytes()).serial_number

    def reloaded(self, first_serial: int) -> bool:
        """Whether its agent installed a renewed certificate and its etcd client took it."""
        assert self.host.agent is not None
        return self.serial() != first_serial and RELOADED in self.host.agent.log()


@dataclass
class Renewing:
    net: Underlay
    nodes: list[Node]
    authority: clusterca.ClusterCA
    crl_file: Path  # what etcd checks each handshake against
    store: Registry
    client: Any  # the container's own etcd client (its certificate: never revoked)
    marker: str
    dir: Path


def _node_files(store: Store, directory: Path, name: str, ip: str) -> tuple[TLSFiles, TLSFiles]:
    """The node's first certificate, due for renewal DUE_IN from now: its files, and
    copies of them."""
    start = datetime.datetime.now(datetime.UTC) - (VALIDITY * pki.RENEW_AT - DUE_IN)
    issued = clusterca.issue_node(store, NAME, name, ip, valid_for=VALIDITY, not_before=start)
    assert not pki.renewal_due(issued.cert_pem.encode())  # it comes due while it runs
    directory.mkdir()
    pki.write_pem(directory / "ca.pem", issued.ca_pem.encode(), private=False)
    for stem in ("node", "first"):
        pki.write_pem(directory / f"{stem}.pem", issued.cert_pem.encode(), private=False)
        pki.write_pem(directory / f"{stem}-key.pem", issued.key_pem.encode(), private=True)
    ca = directory / "ca.pem"
    return (
        TLSFiles(ca, directory / "node.pem", directory / "node-key.pem"),
        TLSFiles(ca, directory / "first.pem", directory / "first-key.pem"),
    )


@pytest.fixture
def renewing(
    vulcano: Invoke, store: Store, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Renewing]:
    require_root()
    r = vulcano("cluster", "create", NAME, "--size", "2", "--tls")
    assert r.exit_code == 0, r.output
    authority = clusterca.load(store, NAME)
    base = tmp_path / "net"
    base.mkdir()
    crl_file = base / "etcd-crl.pem"
    pki.write_pem(crl_file, authority.crl(), private=False)
    client_files = authority.client_files()
    assert client_files.cert is not None and client_files.key is not None
    # etcd's own certificates from the cluster's CA; the test reaches it as the container
    tls = EtcdTLS(
        base / "etcd-tls", authority.ca, authority.cacert, client_files.cert, client_files.key
    )
    tls.directory.mkdir()
    marker = "vrt" + secrets.token_hex(4)
    with Underlay(base, tls=tls, etcd_args=[f"--client-crl-file={crl_file}"]) as net:
        try:
            r = vulcano("cluster", "endpoints", NAME, net.etcd_local_endpoint)
            assert r.exit_code == 0 and "network config written" in r.output, r.output
            nodes = []
            for i, host in enumerate(net.add_hosts(2)):
                name = f"{NAME}-{i + 1}"
                files, first = _node_files(store, base / f"tls-{name}", name, host.ip)
                nodes.append(Node(host, name, files, first))
                host.start_agent(
                    *("--cacert", str(files.cacert), "--cert", str(files.cert)),
                    *("--key", str(files.key)),
                    ttl=TTL,
                    hostname=name,
                )
            for node in nodes:
                node.host.wait_overlay()
            client = net.etcd_client()
            try:
                yield Renewing(
                    net, nodes, authority, crl_file, Registry(client), client, marker, tmp_path
                )
            finally:
                with contextlib.suppress(Exception):  # teardown goes on whatever failed
                    registry = Registry(client)
                    specs = list(registry.specs())
                    if specs:
                        registry.destroy(specs)
                    wait_for(lambda: not pids_of(marker), 15, "units stopped after destroy")
                client.close()
        finally:
            for host in net.hosts:
                host.kill_agent()
            kill_by_pid(pids_of(marker))
            print_logs_if_failed(request, net.base.glob("agent-*.log"))


def _unit(f: Renewing, name: str, exec_start: str, machine: TestHost | None) -> str:
    fleet = f"MachineID={machine.machine_id}" if machine is not None else "Global=true"
    path = f.dir / name
    path.write_text(
        f"[Service]\nWorkingDirectory={REPO}\nExecStart={exec_start}\n\n"
        f"[X-Vulcano]\nSandbox=yes\n\n[X-Fleet]\n{fleet}\n"
    )
    return str(path)


def _result(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _meta(client: Any, key: str) -> tuple[int, int, int]:
    """(create revision, mod revision, lease) of a key: changed if it was ever re-made."""
    value, meta = client.get(key)
    assert value is not None, f"{key} is gone"
    return int(meta.create_revision), int(meta.mod_revision), int(meta.lease_id)


def _admitted(f: Renewing, tls: TLSFiles) -> bool:
    return handshake_admitted(f.net.etcd_local_endpoint, tls)


def _etcd_connections(f: Renewing, host: TestHost) -> list[str]:
    """The host's established TCP connections to etcd, as ss lists them."""
    out = host.exec(["ss", "-Htn", "state", "established", *_to_etcd(f)]).stdout
    return out.splitlines()


def _to_etcd(f: Renewing) -> list[str]:
    return ["dst", f.net.gateway, "dport", "=", str(ETCD_CLIENT_PORT)]


def _sans(cert_pem: bytes) -> tuple[set[str], set[str]]:
    names = pki.load_cert(cert_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    ips = {str(ip) for ip in names.value.get_values_for_type(x509.IPAddress)}
    return ips, set(names.value.get_values_for_type(x509.DNSName))


def test_renewal_while_units_stream_across_the_overlay_stops_and_loses_nothing(
    renewing: Renewing, vulcano: Invoke
) -> None:
    f = renewing
    first, second = f.nodes
    results = f.dir / "stream"
    results.mkdir()
    sink_result, source_result = results / "sink.json", results / "source.json"
    python = f"{sys.executable} -m vulcano.lab.stream"

    # -- a unit in a sandbox on each machine, one TCP stream between them -------------
    sink = _unit(
        f, "sink.service", f"{python} serve {PORT} {sink_result} {f.marker}-sink", first.host
    )
    r = vulcano("--cluster", NAME, "start", "--block-timeout", str(WAIT), sink)
    assert r.exit_code == 0, r.output
    sink_ip = wait_for(
        lambda: (s := f.store.states().get("sink.service")) and s.running and s.sandbox_ip,
        WAIT,
        "the sink's sandbox address",
    )
    assert ipaddress.ip_address(sink_ip) in ipaddress.ip_network("10.244.0.0/16")
    wait_for(lambda: _result(sink_result), WAIT, "the sink listening")
    source = _unit(
        f,
        "source.service",
        f"{python} send {sink_ip} {PORT} {source_result} {f.marker}-source",
        second.host,
    )
    r = vulcano("--cluster", NAME, "start", "--block-timeout", str(WAIT), source)
    assert r.exit_code == 0, r.output
    wait_for(lambda: _result(sink_result).get("received", 0) >= 50, WAIT, "the stream flowing")
    assert f.store.states()["source.service"].sandbox_ip not in (None, sink_ip)

    units = ["sink.service", "source.service"]
    pids = {unit: main_pids(f"{f.marker}-{unit.split('.')[0]}") for unit in units}
    assert all(len(p) == 1 for p in pids.values()), pids
    sampler = CopySampler(
        process_copies({unit: f"{f.marker}-{unit.split('.')[0]}" for unit in units}),
        interval=SAMPLE_EVERY,
    ).start()
    machines = {n.host.machine_id: _meta(f.client, KS.machine(n.host.machine_id)) for n in f.nodes}
    homes = {"sink.service": first.host.machine_id, "source.service": second.host.machine_id}
    placed = {u: _meta(f.client, KS.assignment(m, u)) for u, m in homes.items()}
    since = {u: f.store.states()[u].since for u in units}
    first_serials = {n.name: n.serial() for n in f.nodes}

    try:
        # -- renewal comes due: the agents ask, the container signs, they install ----
        wait_for(
            lambda: all(f.client.get(KS.certificate_request(m))[0] for m in machines),
            DUE_IN.total_seconds() + WAIT,
            "both agents asking for a renewed certificate",
        )
        r = vulcano("cluster", "renew", NAME)
        assert r.exit_code == 0, r.output
        for n in f.nodes:
            assert f"Signed a renewed certificate for {n.name} ({n.host.machine_id})" in r.output
        for n in f.nodes:
            wait_for(
                lambda n=n: n.reloaded(first_serials[n.name]),
                WAIT,
                f"{n.name}'s agent installing and reloading its renewed certificate",
            )
            renewed = n.cert.read_bytes()
            assert n.tls.key is not None and n.first.key is not None
            assert pki.issued_by(renewed, f.authority.ca.cert_pem)
            assert pki.key_matches(renewed, n.tls.key.read_bytes())
            assert not pki.key_matches(renewed, n.first.key.read_bytes())  # a key of its own
            assert not pki.renewal_due(renewed)
            cn = pki.load_cert(renewed).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            assert cn[0].value == n.name
            assert _sans(renewed) == ({n.host.ip, "127.0.0.1"}, {n.name, "localhost"})
            assert not (n.host.state_dir / PENDING_KEY).exists()
            assert f.client.get(KS.certificate_request(n.host.machine_id))[0] is None
            assert f.client.get(KS.issued_certificate(n.host.machine_id))[0] is None

        # -- the first certificates revoked, every etcd connection of the agents cut ---
        crl = pki.new_crl(f.authority.ca, list(first_serials.values()))
        pki.write_pem(f.crl_file, crl, private=False)
        for n in f.nodes:
            assert not _admitted(f, n.first), f"{n.name}'s first certificate still admitted"
            assert _admitted(f, n.tls)
        received_at_cut = _result(sink_result)["received"]
        for n in f.nodes:
            before = _etcd_connections(f, n.host)
            assert before, f"{n.name}'s agent has no etcd connection to cut"
            n.host.exec(["ss", "-K", "-tn", *_to_etcd(f)])
            gone = set(before) - set(_etcd_connections(f, n.host))
            assert gone, f"ss -K cut none of {n.name}'s etcd connections"
        cut = time.monotonic()
        for n in f.nodes:
            wait_for(
                lambda n=n: _etcd_connections(f, n.host),
                WAIT,
                f"{n.name}'s agent connected again",
            )
        # the agents' watches resynced on the new connections: both take a new unit
        after = _unit(f, "after.service", f"/bin/sh -c 'sleep 1000; :' {f.marker}-after", None)
        r = vulcano("--cluster", NAME, "start", "--block-timeout", str(WAIT), after)
        assert r.exit_code == 0, r.output
        wait_for(
            lambda: sorted(s.machine_id or "" for s in f.store.machine_states()
                           if s.name == "after.service" and s.running) == sorted(machines),
            WAIT,
            "after.service reported running by both agents",
        )  # fmt: skip
        wait_for(
            lambda: _result(sink_result).get("received", 0) >= received_at_cut + MESSAGES_AFTER,
            WAIT,
            "the stream flowing after the cut",
        )
        # a lease refreshed over no connection would be gone by now
        time.sleep(max(0.0, cut + 2 * TTL - time.monotonic()))
        for machine_id, (_, _, lease) in machines.items():
            assert f.client.get_lease_info(lease).TTL > 0, f"{machine_id}'s lease expired"
    finally:
        report = sampler.stop()

    # -- nothing stopped, nothing moved, nothing was lost ------------------------------
    report.check(100, units)
    for unit, [pid] in pids.items():
        assert {c.split("@")[0] for c in report.seen[unit]} == {str(pid)}, (unit, report.seen)
        assert main_pids(f"{f.marker}-{unit.split('.')[0]}") == [pid]
    for machine_id, meta in machines.items():
        assert _meta(f.client, KS.machine(machine_id)) == meta, f"{machine_id} left etcd"
    for unit, meta in placed.items():
        assert _meta(f.client, KS.assignment(homes[unit], unit)) == meta, f"{unit} moved"
    placements = f.store.placements()
    assert {u: placements[u] for u in units} == {u: [m] for u, m in homes.items()}
    assert {u: f.store.states()[u].since for u in units} == since
    assert all(n.host.agent is not None and n.host.agent.running() for n in f.nodes)

    r = vulcano("--cluster", NAME, "stop", "--block-timeout", str(WAIT), "source.service")
    assert r.exit_code == 0, r.output
    sent = wait_for(lambda: (s := _result(source_result)).get("ended") and s, WAIT, "source done")
    got = wait_for(lambda: (s := _result(sink_result)).get("ended") and s, WAIT, "stream ended")
    print(
        f"stream: {got['received']} messages, {got['received'] - received_at_cut} after the "
        f"cut; longest wait for an echo {sent['longest_wait'] * 1000:.0f} ms"
    )
    assert sent["error"] == "" and got["error"] == "", (sent, got)
    assert got["connections"] == 1 and got["in_order"], got
    assert got["received"] == sent["sent"] == sent["echoed"], (sent, got)
