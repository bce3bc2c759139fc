"""A TLS member whose address is found at boot gets its certificate from the panel: the
node's own script (node-certificate.sh, from its user-data) runs for real with curl and
openssl against `vulcano serve` over HTTPS, and etcd then runs from the node's generated
configuration on the certificate it got; bad tokens, CSRs, pins and reuse are refused."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from container.services import clusterca, enrolment
from container.services.audit import AuditLog
from container.store import open_store
from tests.conftest import require
from tests.container.clusters.conftest import Invoke
from tests.container.clusters.test_cluster_mtls import Member, Node
from tests.container.panel.served import ServedPanel, served_panel
from vulcano import etcd as vulcano_etcd
from vulcano import nodeconfig, nodetls, pki, selfsigned
from vulcano.lab.ports import reserve_port

NAME = "enr"
MEMBER = f"{NAME}-1"
ADDRESS = "127.0.0.1"  # where this test's member listens, as node-address would find it
_TOKEN = re.compile(r"enrol_token='([^']+)'")


@dataclass
class Booted:
    """One node's user-data, its files written under ``root`` as the node would."""

    data: dict[str, object]
    root: Path
    tls_dir: Path
    env: Path
    script: Path

    @property
    def token(self) -> str:
        match = _TOKEN.search(self.env.read_text())
        assert match
        return match.group(1)

    def run(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", str(self.script), str(self.env)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def written(data: dict[str, object], path: str) -> dict[str, str]:
    files = data["write_files"]
    assert isinstance(files, list)
    [entry] = [f for f in files if f["path"] == path]
    return dict(entry)


def boot(vulcano: Invoke, root: Path, *, address: str = ADDRESS) -> Booted:
    """Node 1's user-data, its TLS files and enrolment as cloud-init writes them (moved
    under ``root``), the address filled in as node-address does."""
    r = vulcano("cluster", "user-data", NAME, "--node", "1")
    assert r.exit_code == 0, r.output
    data = yaml.safe_load(r.output)
    paths = {f["path"] for f in data["write_files"]}
    # no certificate nor key travels in this user-data: only the CA, the CRL, the enrolment
    assert nodetls.CERT_PATH not in paths and nodetls.KEY_PATH not in paths
    assert "PRIVATE KEY" not in r.output
    tls_dir = root / "tls"
    tls_dir.mkdir(parents=True)
    for path in (nodetls.CA_PATH, nodetls.CRL_PATH):
        pki.write_pem(
            tls_dir / Path(path).name, written(data, path)["content"].encode(), private=False
        )
    entry = written(data, nodetls.ENROL_PATH)
    assert (entry["owner"], entry["permissions"]) == ("root:root", "0600")
    text = entry["content"].replace(nodeconfig.NODE_IP_MARK, address)
    text = text.replace(f"'{nodetls.TLS_DIR}'", f"'{tls_dir}'")
    text = text.replace("enrol_owner='etcd'", "enrol_owner='root'")
    env = root / "enrol.env"
    pki.write_pem(env, text.encode(), private=True)
    script = root / "node-certificate"
    script.write_text(written(data, nodetls.ENROL_SCRIPT_PATHS["cloud-init"])["content"])
    # node-address fills the enrolment's address too, then the script runs, before etcd
    runcmd = data["runcmd"]
    assert runcmd[0][-1] == nodetls.ENROL_PATH
    # the address is the one the node reaches the panel from (it is nearest its peers)
    assert runcmd[0][1] == "--via" and runcmd[0][2].split(",")[0] == "127.0.0.1", runcmd[0]
    assert runcmd[1] == [nodetls.ENROL_SCRIPT_PATHS["cloud-init"], nodetls.ENROL_PATH]
    return Booted(data, root, tls_dir, env, script)


@pytest.fixture
def panel(state_dir: Path, tmp_path: Path) -> Iterator[ServedPanel]:
    missing = [tool for tool in ("curl", "openssl", "etcd") if shutil.which(tool) is None]
    require(not missing, f"needs {', '.join(missing)} (the node's own tools, and etcd)")
    (state_dir / enrolment.ENDPOINT_FILE).unlink()  # what this panel records, not the fixture's
    port = reserve_port()
    url = f"https://127.0.0.1:{port}"
    env = {"VULCANO_PANEL_URL": url, "VULCANO_ADMIN_PASSWORD": "enrol-test"}
    with served_panel(state_dir, tmp_path / "serve.log", env, https=True, port=port) as served:
        yield served


@pytest.fixture
def cluster(vulcano: Invoke, panel: ServedPanel) -> None:
    r = vulcano("cluster", "create", NAME, "--size", "1")  # TLS by default, no --ip
    assert r.exit_code == 0, r.output


@pytest.mark.usefixtures("cluster")
def test_a_member_enrols_at_boot_and_etcd_runs_on_its_certificate(
    vulcano: Invoke, panel: ServedPanel, state_dir: Path, tmp_path: Path
) -> None:
    recorded = enrolment.panel_endpoint(state_dir)  # what `vulcano serve` recorded
    cert_path = state_dir / "panel-tls.pem"
    assert recorded == enrolment.PanelEndpoint(
        panel.url, selfsigned.spki_pin(cert_path.read_bytes())
    )
    node = boot(vulcano, tmp_path / "node")
    token, saved = node.token, node.env.read_text()
    done = node.run()
    assert done.returncode == 0, done.stderr
    assert not node.env.exists()  # the token is gone from the node once used
    cert, key = node.tls_dir / "node.pem", node.tls_dir / "node-key.pem"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert pki.key_matches(cert.read_bytes(), key.read_bytes())
    ca = (node.tls_dir / "ca.pem").read_bytes()
    assert pki.issued_by(cert.read_bytes(), ca)
    assert selfsigned.san_names(cert.read_bytes()) == {ADDRESS, MEMBER, "localhost"}
    issued = pki.load_cert(cert.read_bytes())
    serial = f"{issued.serial_number:x}"

    # recorded and audited (by serial, never the token); a reboot asks nothing again
    entries = AuditLog(open_store(state_dir)).entries()
    [entry] = [e for e in entries if e.action == "certificate-enrol"]
    assert (entry.target, entry.cluster) == (MEMBER, NAME)
    assert entry.detail == f"serial {serial}, address {ADDRESS}"
    assert token not in panel.log() and token not in repr(entries)
    before = cert.read_bytes()
    node.env.write_text(saved)  # booting again, even were the file still there
    rebooted = node.run()
    assert rebooted.returncode == 0, rebooted.stderr
    assert cert.read_bytes() == before
    assert len(AuditLog(open_store(state_dir)).entries()) == len(entries)

    # etcd from the node's own configuration, on the certificate it got
    client_port, peer_port = reserve_port(), reserve_port()
    config = nodeconfig.written_file(node.data, nodeconfig.ETCD_CONFIG_PATH)
    config = config.replace(nodeconfig.NODE_IP_MARK, ADDRESS).replace(
        nodetls.TLS_DIR, str(node.tls_dir)
    )
    config = config.replace("/var/lib/etcd/vulcano", str(node.root / "data"))
    config = re.sub(
        r":(2379|2380)\b",
        lambda m: f":{client_port if m.group(1) == '2379' else peer_port}",
        config,
    )
    endpoint = f"https://{ADDRESS}:{client_port}"
    files = vulcano_etcd.TLSFiles(node.tls_dir / "ca.pem", cert, key)
    member = Member(Node(node.root, files, node.tls_dir / "crl.pem", config, ""), endpoint)
    member.start()
    try:
        assert vulcano("cluster", "endpoints", NAME, endpoint).exit_code == 0
        r = vulcano("--cluster", NAME, "list-machines")  # the container's own certificate
        assert r.exit_code == 0, r.output
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"{endpoint}/health", timeout=5, verify=str(files.cacert))  # no cert
    finally:
        member.stop()


@pytest.mark.usefixtures("cluster")
def test_a_token_signs_for_one_key_only(vulcano: Invoke, tmp_path: Path) -> None:
    node = boot(vulcano, tmp_path / "node")
    saved = node.env.read_text()
    assert node.run().returncode == 0
    cert, key = node.tls_dir / "node.pem", node.tls_dir / "node-key.pem"
    # the answer lost on the way: asked again for the same key, it is signed again
    cert.unlink()
    node.env.write_text(saved)
    again = node.run()
    assert again.returncode == 0, again.stderr
    assert pki.key_matches(cert.read_bytes(), key.read_bytes())
    # a copy of the user-data on another machine (another key) gets nothing
    cert.unlink()
    key.unlink()
    node.env.write_text(saved)
    other = node.run()
    assert other.returncode == 1
    assert "the panel refused (403): token: used already, for another key" in other.stderr
    assert not cert.exists()


@pytest.mark.usefixtures("cluster")
def test_a_panel_that_is_not_the_pinned_one_gets_no_request(
    vulcano: Invoke, tmp_path: Path, state_dir: Path
) -> None:
    node = boot(vulcano, tmp_path / "node")
    other = pki.new_ca("not the panel")
    pin = selfsigned.spki_pin(other.cert_pem)
    text = re.sub(r"enrol_pin='[^']+'", f"enrol_pin='sha256//{pin}'", node.env.read_text())
    node.env.write_text(text)
    done = node.run()
    assert done.returncode != 0
    assert "is not the panel: its key is not the pinned one" in done.stderr, done.stderr
    assert not (node.tls_dir / "node.pem").exists()
    entries = AuditLog(open_store(state_dir)).entries()
    assert not [e for e in entries if e.action == "certificate-enrol"]


def _csr(common_name: str = MEMBER) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


@pytest.mark.usefixtures("cluster")
def test_bad_requests_are_refused_naming_what_is_wrong_and_sign_nothing(
    vulcano: Invoke, panel: ServedPanel, state_dir: Path, tmp_path: Path
) -> None:
    node = boot(vulcano, tmp_path / "node")
    url = panel.url + enrolment.certificate_path(NAME, 1)
    store = open_store(state_dir)

    def ask(
        token: str | None, body: bytes, address: str = ADDRESS, to: str = url
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return requests.post(
            to,
            params={"address": address},
            data=body,
            headers=headers,
            timeout=10,
            verify=panel.verify,
        )

    cases = [
        (ask(None, _csr()), 403, "token: give the enrolment token as Authorization: Bearer"),
        (ask("x" * 43, _csr()), 403, "token: not an enrolment token of this node"),
        (
            ask(node.token, _csr(), to=url.replace("/1/", "/2/")),
            403,
            "token: not an enrolment token of this node",
        ),
        (
            ask(node.token, b"not a CSR"),
            400,
            "request: enr-1: the certificate request is not a PEM CSR",
        ),
        (ask(node.token, b"x" * 5000), 400, "request: a CSR of at most 4096 bytes"),
        (
            ask(node.token, _csr(), address="nowhere"),
            400,
            "address: 'nowhere' is not an IP address",
        ),
        (
            ask(node.token, _csr(), address="0.0.0.0"),
            400,
            "address: 0.0.0.0 cannot be a member's address",
        ),
    ]
    for answer, status, message in cases:
        assert (answer.status_code, answer.text.strip()) == (status, message)
        assert answer.headers["Cache-Control"] == "no-store"
    with store.read() as conn:
        kinds = [
            r["kind"]
            for r in conn.execute("SELECT kind FROM certificates WHERE subject = ?", (MEMBER,))
        ]
    assert kinds == []  # nothing signed, and the token unused: the node still enrols
    assert node.run().returncode == 0

    # an expired token, and one made before the node's machine was removed (revoked)
    late = boot(vulcano, tmp_path / "late")
    with store.transaction() as conn:
        conn.execute("UPDATE enrolments SET expires = 1 WHERE token_hash != ''")
    answer = ask(late.token, _csr())
    assert answer.status_code == 403 and answer.text.startswith("token: expired"), answer.text
    removed = boot(vulcano, tmp_path / "removed")
    clusterca.revoke(store, NAME, MEMBER)
    answer = ask(removed.token, _csr())
    assert (answer.status_code, answer.text.strip()) == (
        403,
        "token: this node's certificates were revoked after it was made",
    )


def test_without_a_panel_a_member_with_no_address_is_named_and_nothing_is_stored(
    vulcano: Invoke, state_dir: Path
) -> None:
    (state_dir / enrolment.ENDPOINT_FILE).unlink()  # no `vulcano serve` has started here
    r = vulcano(
        "cluster", "create", "bare", "--size", "3", "--ip", "192.0.2.1", "--ip", "192.0.2.2"
    )
    assert r.exit_code == 2
    assert "--ip" in r.output and "vulcano serve" in r.output and "--no-tls" in r.output
    assert "bare" not in vulcano("cluster", "list").output
    # every member's address given: each node's certificate is made here, no panel needed
    ips = ["--ip", "192.0.2.1", "--ip", "192.0.2.2", "--ip", "192.0.2.3"]
    assert vulcano("cluster", "create", "bare", "--size", "4", *ips).exit_code == 0
    text = vulcano("cluster", "user-data", "bare", "--node", "2").output
    assert "PRIVATE KEY" in text and nodetls.ENROL_PATH not in text
    assert vulcano("cluster", "create", "open", "--size", "3", "--no-tls").exit_code == 0
    assert (
        "https://"
        not in vulcano("cluster", "user-data", "open", "--node", "2").output.split("discovery")[0]
    )
