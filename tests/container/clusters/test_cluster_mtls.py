"""A cluster made with --tls, against the real etcd booted from its own node's user-data
(its etcd configuration and TLS files as the node would write them, moved under a test
directory and onto free ports; discovery through the real installer): the cluster's own
agent and the CLI are admitted; no certificate, another cluster's CA, an expired one
and a removed machine's (once the agents wrote the CRL) are refused; the CA is kept
private and never printed nor audited."""

from __future__ import annotations

import datetime
import json
import re
import secrets
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from agent.app import build
from agent.config import resolve
from agent.credentials import Credentials
from agent.units.runners.builtin import BuiltinRunner
from container.services import clusterca
from container.services.audit import AuditLog
from container.store import open_store
from tests.container.clusters.conftest import Invoke
from vulcano import etcd as vulcano_etcd
from vulcano import nodeconfig, nodetls, pki
from vulcano.keyspace import Keyspace
from vulcano.lab import etcdtls
from vulcano.lab.cluster import kill_by_pid, pids_of
from vulcano.lab.poll import wait_for
from vulcano.lab.ports import reserve_port
from vulcano.lab.services import stop_process
from vulcano.records import Machine

KS = Keyspace()
NAME = "sec"
MEMBER = f"{NAME}-1"
AGENT_ONLY = f"{NAME}-2"


@dataclass
class Node:
    """A node's files as its user-data writes them, under ``root``."""

    root: Path
    tls: vulcano_etcd.TLSFiles
    crl: Path
    etcd_config: str
    agent_config: str


def node_files(vulcano: Invoke, node: int, root: Path, ports: dict[str, str]) -> Node:
    r = vulcano("cluster", "user-data", NAME, "--node", str(node))
    assert r.exit_code == 0, r.output
    data = yaml.safe_load(r.output)
    tls_dir = root / "tls"
    tls_dir.mkdir(parents=True)

    def moved(text: str) -> str:
        text = text.replace(nodetls.TLS_DIR, str(tls_dir))
        text = text.replace("/var/lib/etcd/vulcano", str(root / "data"))
        # at once, as whole port numbers: a new client port starting 2380 is left alone
        return re.sub(r":(2379|2380)\b", lambda m: ports.get(m.group(0), m.group(0)), text)

    for path in (nodetls.CA_PATH, nodetls.CERT_PATH, nodetls.KEY_PATH, nodetls.CRL_PATH):
        [entry] = [f for f in data["write_files"] if f["path"] == path]
        assert entry["owner"] == "etcd:etcd"
        assert entry["permissions"] == ("0600" if path == nodetls.KEY_PATH else "0644")
        target = tls_dir / Path(path).name
        pki.write_pem(target, entry["content"].encode(), private=path == nodetls.KEY_PATH)
    return Node(
        root,
        vulcano_etcd.TLSFiles(tls_dir / "ca.pem", tls_dir / "node.pem", tls_dir / "node-key.pem"),
        tls_dir / "crl.pem",
        moved(nodeconfig.written_file(data, nodeconfig.ETCD_CONFIG_PATH)),
        moved(nodeconfig.written_file(data, nodeconfig.AGENT_CONFIG_PATH)),
    )


@dataclass
class Member:
    node: Node
    endpoint: str
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        config = self.node.root / "etcd.conf.yml"
        config.write_text(self.node.etcd_config)
        log = open(self.node.root / "etcd.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            ["etcd", "--config-file", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        tls = self.node.tls
        assert tls.cert is not None and tls.key is not None
        wait_for(
            lambda: (
                requests.get(
                    f"{self.endpoint}/health",
                    timeout=1,
                    verify=str(tls.cacert),
                    cert=(str(tls.cert), str(tls.key)),
                ).json()["health"]
                == "true"
            ),
            30,
            "the TLS member healthy",
        )

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


@pytest.fixture
def member(vulcano: Invoke, tmp_path: Path) -> Iterator[Member]:
    r = vulcano("cluster", "create", NAME, "--size", "2", "--ip", "127.0.0.1", "--tls")
    assert r.exit_code == 0, r.output
    client_port, peer_port = reserve_port("127.0.0.1"), reserve_port("127.0.0.1")
    ports = {":2379": f":{client_port}", ":2380": f":{peer_port}"}
    endpoint = f"https://127.0.0.1:{client_port}"
    node = node_files(vulcano, 1, tmp_path / "node1", ports)
    assert f'etcd-endpoints = "{endpoint}"' in node.agent_config
    m = Member(node, endpoint)
    m.start()
    r = vulcano("cluster", "endpoints", NAME, endpoint)
    assert r.exit_code == 0, r.output
    try:
        yield m
    finally:
        m.stop()


def connect(member: Member, tls: vulcano_etcd.TLSFiles) -> Any:
    return vulcano_etcd.connect(member.endpoint, tls=tls)


def admitted(member: Member, tls: vulcano_etcd.TLSFiles) -> bool:
    client = connect(member, tls)
    try:
        client.put("/probe", "x")
    except vulcano_etcd.EtcdUnavailable:
        return False
    finally:
        client.close()
    return True


def handshake_admitted(member: Member, tls: vulcano_etcd.TLSFiles) -> bool:
    return etcdtls.handshake_admitted(member.endpoint, tls)


def test_the_clusters_own_agent_and_the_cli_are_admitted(
    member: Member, vulcano: Invoke, state_dir: Path
) -> None:
    assert admitted(member, member.node.tls)  # the agent's files: its node's certificate
    client = connect(member, member.node.tls)
    machine = Machine(id="m-sec-1", public_ip="127.0.0.1", hostname=MEMBER, metadata={})
    client.put(KS.machine(machine.id), machine.to_json())
    client.close()
    r = vulcano("--cluster", NAME, "list-machines", "--full")
    assert r.exit_code == 0, r.output
    assert "m-sec-1" in r.output
    # the container's own certificate, not the node's
    store = open_store(state_dir)
    files = clusterca.load(store, NAME).client_files()
    assert files.cert is not None
    assert pki.load_cert(files.cert.read_bytes()).subject.rfc4514_string() == (
        f"CN={clusterca.CONTAINER_SUBJECT}"
    )


def test_the_ca_is_kept_0600_in_a_0700_directory_never_printed_nor_audited(
    member: Member, vulcano: Invoke, state_dir: Path
) -> None:
    directory = state_dir / clusterca.PKI_DIR / NAME
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(directory.parent.stat().st_mode) == 0o700
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    ca_key = (directory / "ca-key.pem").read_text()
    outputs = [
        vulcano("cluster", "show", NAME, "--json").output,
        vulcano("cluster", "user-data", NAME, "--node", "1").output,
        vulcano("cluster", "list").output,
    ]
    assert json.loads(outputs[0])["tls"] == "mutual"
    assert all(ca_key not in out for out in outputs)
    audited = json.dumps([e.__dict__ for e in AuditLog(open_store(state_dir)).entries()])
    assert "PRIVATE KEY" not in audited


@pytest.mark.parametrize("case", ["no certificate", "another cluster's CA", "expired"])
def test_the_member_refuses(case: str, member: Member, state_dir: Path, tmp_path: Path) -> None:
    store = open_store(state_dir)
    authority = clusterca.load(store, NAME)
    if case == "no certificate":
        tls = vulcano_etcd.TLSFiles(member.node.tls.cacert)
    else:
        if case == "another cluster's CA":
            other = pki.new_ca("vulcano cluster other")
            issued = pki.issue(other, MEMBER, "peer", ips=["127.0.0.1"])
        else:
            start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=2)
            issued = pki.issue(
                authority.ca, MEMBER, "peer", ips=["127.0.0.1"], not_before=start,
                valid_for=datetime.timedelta(days=1),
            )  # fmt: skip
        cert, key = pki.write_issued(tmp_path, "client", issued)
        tls = vulcano_etcd.TLSFiles(member.node.tls.cacert, cert, key)
    assert not admitted(member, tls)
    assert admitted(member, member.node.tls)  # while the cluster's own still is


def test_a_removed_machines_certificates_are_refused_once_the_agents_write_the_crl(
    member: Member, vulcano: Invoke, tmp_path: Path, state_dir: Path
) -> None:
    gone = node_files(vulcano, 2, tmp_path / "node2", {})  # the agent-only node
    again = node_files(vulcano, 2, tmp_path / "node2b", {})  # its user-data made twice
    assert admitted(member, gone.tls) and admitted(member, again.tls)
    client = connect(member, gone.tls)
    machine = Machine(id="m-sec-2", public_ip="127.0.0.2", hostname=AGENT_ONLY, metadata={})
    client.put(KS.machine(machine.id), machine.to_json())
    client.close()

    r = vulcano("--cluster", NAME, "machine", "remove", "m-sec-2", "--block-timeout", "10")
    assert r.exit_code == 0, r.output
    assert f"Certificates of {AGENT_ONLY} revoked (2 new)" in r.output  # both user-datas'
    assert handshake_admitted(member, gone.tls)  # not yet: etcd reads the CRL file only

    class Kept:  # the member's node as its agent's credentials see it
        machine_id = "m-sec-1"
        keyspace = KS

        def __init__(self) -> None:
            self.client = connect(member, member.node.tls)

        def etcd_client(self) -> Any:
            return self.client

        def lease_id(self) -> int:
            return 0

    node = Kept()
    credentials = Credentials(
        node, member.node.tls, tmp_path, stop_event=None,  # type: ignore[arg-type]
        crl_file=member.node.crl,
    )  # fmt: skip
    credentials.check()
    node.client.close()
    assert gone.tls.cert is not None
    serial = pki.load_cert(gone.tls.cert.read_bytes()).serial_number
    assert serial in pki.crl_serials(
        member.node.crl.read_bytes(), member.node.tls.cacert.read_bytes()
    )
    assert not handshake_admitted(member, gone.tls)
    assert not handshake_admitted(member, again.tls)
    assert handshake_admitted(member, member.node.tls)
    assert admitted(member, member.node.tls)
    [entry] = [
        e for e in AuditLog(open_store(state_dir)).entries() if e.action == "certificate-revoke"
    ]
    assert entry.target == AGENT_ONLY and f"{serial:x}" in entry.detail


def test_an_agent_renews_its_certificate_and_reconnects_with_it_while_its_unit_runs(
    member: Member, vulcano: Invoke, tmp_path: Path, state_dir: Path
) -> None:
    store = open_store(state_dir)
    hostname = socket.gethostname()  # what the agent's record names, the container signs for
    now = datetime.datetime.now(datetime.UTC)
    due = clusterca.issue_node(
        store, NAME, hostname, "198.51.100.9", valid_for=datetime.timedelta(hours=1),
        not_before=now - datetime.timedelta(minutes=50),
    )  # fmt: skip
    files = tmp_path / "agent-tls"
    files.mkdir()
    for name, text in (("ca", due.ca_pem), ("node", due.cert_pem), ("crl", due.crl_pem)):
        pki.write_pem(files / f"{name}.pem", text.encode(), private=False)
    pki.write_pem(files / "node-key.pem", due.key_pem.encode(), private=True)
    old = vulcano_etcd.TLSFiles(files / "ca.pem", tmp_path / "old.pem", tmp_path / "old-key.pem")
    pki.write_pem(tmp_path / "old.pem", due.cert_pem.encode(), private=False)
    pki.write_pem(tmp_path / "old-key.pem", due.key_pem.encode(), private=True)
    config = resolve(
        {
            "etcd_endpoints": member.endpoint, "public_ip": "198.51.100.9",
            "machine_id": "m-renew", "state_dir": str(tmp_path / "agent"), "ttl": "15",
            "overlay": "false", "cacert": str(files / "ca.pem"),
            "cert": str(files / "node.pem"), "key": str(files / "node-key.pem"),
            "crl_file": str(files / "crl.pem"),
        },
        environ={},
    )  # fmt: skip
    agent = build(config, runner=BuiltinRunner(tmp_path / "agent"))
    thread = threading.Thread(target=agent.run, daemon=True)
    marker = "vrn-" + secrets.token_hex(4)
    unit = tmp_path / "sleeper.service"
    unit.write_text(f"[Service]\nExecStart=/bin/sh -c 'sleep 1000; :' {marker}\n")
    try:
        thread.start()
        wait_for(agent.ready.is_set, 15, "the agent joined over TLS")
        r = vulcano("--cluster", NAME, "start", "--block-timeout", "20", str(unit))
        assert r.exit_code == 0, r.output
        running = wait_for(lambda: pids_of(marker), 15, "the unit's process")
        [credentials] = [c for c in agent._started if isinstance(c, Credentials)]

        credentials.check()  # due: asks with a CSR of a key of its own
        client = connect(member, member.node.tls)
        csr, _ = client.get(KS.certificate_request("m-renew"))
        assert csr is not None and b"CERTIFICATE REQUEST" in csr
        r = vulcano("cluster", "renew", NAME)
        assert r.exit_code == 0, r.output
        assert f"Signed a renewed certificate for {hostname} (m-renew)" in r.output
        credentials.check()  # installs it and reloads
        assert credentials.reloads == 1
        renewed = (files / "node.pem").read_bytes()
        assert renewed != due.cert_pem.encode()
        assert not pki.renewal_due(renewed) and pki.key_matches(
            renewed, (files / "node-key.pem").read_bytes()
        )
        assert client.get(KS.certificate_request("m-renew"))[0] is None
        client.close()

        # the old certificate revoked and every connection cut: only the new one gets in
        old_serial = pki.load_cert(due.cert_pem.encode()).serial_number
        ca = clusterca.load(store, NAME).ca
        pki.write_pem(member.node.crl, pki.new_crl(ca, [old_serial]), private=False)
        member.stop()  # (the machine lease, 15 s, outlives the restart even under load)
        member.start()
        restarted = time.monotonic()
        assert not handshake_admitted(member, old)
        assert agent.etcd.client().get(KS.machine("m-renew"))[0] is not None
        wait_for(
            lambda: agent.registration.held_until() > restarted + 14,
            15,
            "a keep-alive of the machine lease through the new connection",
        )
        assert thread.is_alive()
        assert pids_of(marker) == running  # the unit never stopped
    finally:
        vulcano("--cluster", NAME, "destroy", unit.name)
        agent.stop()
        thread.join(timeout=15)
        kill_by_pid(pids_of(marker))
