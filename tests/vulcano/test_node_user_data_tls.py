"""Node user-data with TLS, every flavour, no I/O: etcd's file requires client and peer
certificates of the cluster's CA on https:// URLs and names the CRL as etcd 3.4's loader
takes it; the agent's file names the same files; the material is written with keys 0600
(owned by etcd's user on Debian); material that is not a CA's or not matching is refused
naming it; with TLS a document stays far under the user-data limit."""

from __future__ import annotations

import tomllib
from dataclasses import replace

import pytest
import yaml

from vulcano import cloudconfig, nodeconfig, nodetls, pki
from vulcano.cloudconfig import InputError


def material(ip: str = "10.0.0.5") -> nodetls.NodeTLS:
    ca = pki.new_ca("vulcano cluster t")
    issued = pki.issue(ca, "t-1", "peer", ips=[ip, "127.0.0.1"], dns=["t-1"])
    return nodetls.NodeTLS(
        ca.cert_pem.decode(),
        issued.cert_pem.decode(),
        issued.key_pem.decode(),
        pki.new_crl(ca, []).decode(),
    )


TLS = material()


def spec(flavour: str = "cloud-init", **kw: object) -> nodeconfig.NodeSpec:
    base = nodeconfig.NodeSpec(
        name="t-1", ip="10.0.0.5", discovery_url="https://d.example/x", flavour=flavour, tls=TLS
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_etcd_requires_certificates_of_the_cluster_ca_on_https_urls() -> None:
    config = yaml.safe_load(nodeconfig.etcd_config(spec()))
    assert config["listen-peer-urls"] == "https://10.0.0.5:2380"
    assert config["initial-advertise-peer-urls"] == "https://10.0.0.5:2380"
    assert config["listen-client-urls"] == "https://10.0.0.5:2379,https://127.0.0.1:2379"
    for side in ("client-transport-security", "peer-transport-security"):
        assert config[side] == {
            "cert-file": nodetls.CERT_PATH,
            "key-file": nodetls.KEY_PATH,
            "client-cert-auth": True,
            "trusted-ca-file": nodetls.CA_PATH,
        }
    assert config["ClientTLSInfo"] == {"CRLFile": nodetls.CRL_PATH}
    assert config["PeerTLSInfo"] == {"CRLFile": nodetls.CRL_PATH}


def test_without_tls_nothing_of_it_is_written() -> None:
    plain = replace(spec(), tls=None)
    config = yaml.safe_load(nodeconfig.etcd_config(plain))
    assert config["advertise-client-urls"] == "http://10.0.0.5:2379"
    assert "client-transport-security" not in config and "ClientTLSInfo" not in config
    agent = tomllib.loads(nodeconfig.agent_config(plain))
    assert "cacert" not in agent and "crl-file" not in agent
    assert nodetls.TLS_DIR not in nodeconfig.render_node(plain).text


def test_the_agent_reaches_its_member_over_tls_with_the_same_files() -> None:
    agent = tomllib.loads(nodeconfig.agent_config(spec()))
    assert agent["etcd-endpoints"] == "https://127.0.0.1:2379"
    assert (agent["cacert"], agent["cert"], agent["key"], agent["crl-file"]) == (
        nodetls.CA_PATH, nodetls.CERT_PATH, nodetls.KEY_PATH, nodetls.CRL_PATH,
    )  # fmt: skip
    agent_only = spec(etcd_endpoints="https://10.0.0.1:2379,https://10.0.0.2:2379")
    assert tomllib.loads(nodeconfig.agent_config(agent_only))["etcd-endpoints"].startswith(
        "https://10.0.0.1"
    )


def test_plain_member_urls_are_refused_for_a_tls_node() -> None:
    with pytest.raises(InputError, match=r"etcd_endpoints.*https://host:port"):
        nodeconfig.render_node(spec(etcd_endpoints="http://10.0.0.1:2379"))


def test_cloud_init_writes_the_material_for_etcd_keys_0600() -> None:
    data = yaml.safe_load(nodeconfig.render_node(spec()).text)
    files = {f["path"]: f for f in data["write_files"]}
    for item in TLS.files():
        entry = files[item.path]
        assert entry["owner"] == "etcd:etcd" and entry["defer"] is True
        assert entry["permissions"] == ("0600" if item.path == nodetls.KEY_PATH else "0644")
        assert entry["content"] == item.content


@pytest.mark.parametrize("flavour", ["flatcar", "coreos-legacy"])
def test_docker_flavours_write_it_and_give_the_agent_the_directory(flavour: str) -> None:
    document = nodeconfig.render_node(spec(flavour))
    for item in TLS.files():
        assert nodeconfig.written_file(document.data, item.path) == item.content
    assert f"--volume {nodetls.TLS_DIR}:{nodetls.TLS_DIR} " in document.text.replace("\\n", "\n")
    if flavour == "flatcar":
        modes = {f["path"]: f["mode"] for f in document.data["storage"]["files"]}
        assert modes[nodetls.KEY_PATH] == 0o600 and modes[nodetls.CA_PATH] == 0o644


@pytest.mark.parametrize("flavour", list(nodeconfig.FLAVOURS))
def test_with_tls_a_document_stays_far_under_the_limit(flavour: str) -> None:
    text = nodeconfig.render_node(spec(flavour)).text
    assert len(text.encode()) < cloudconfig.MAX_DOCUMENT_BYTES // 4


def _other_ca_cert() -> str:
    other = pki.new_ca("other")
    return pki.issue(other, "t-1", "peer", ips=["10.0.0.5"]).cert_pem.decode()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ca_pem": "nonsense"}, "CA certificate: not a PEM certificate"),
        ({"cert_pem": _other_ca_cert()}, "not issued by the cluster's CA"),
        ({"key_pem": pki.new_key_pem().decode()}, "not the key of the node certificate"),
        ({"key_pem": "-----BEGIN PRIVATE KEY-----\nx\n"}, "not an unencrypted PEM private key"),
        ({"crl_pem": pki.new_crl(pki.new_ca("other"), []).decode()}, "not signed by the cluster"),
        ({"crl_pem": "x"}, "not a PEM CRL"),
    ],
)
def test_material_that_does_not_fit_is_refused_naming_it(
    change: dict[str, str], message: str
) -> None:
    with pytest.raises(InputError, match=message) as caught:
        nodeconfig.render_node(spec(tls=replace(TLS, **change)))
    assert caught.value.field == "tls"
