"""The agent's TLS settings layer like every other: config file `cacert`/`cert`/`key`,
then VULCANO_CACERT/CERT/KEY, then the flags; each error names where the value came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import ConfigError, resolve
from vulcano import pki
from vulcano.etcd import TLSFiles

HTTPS = "https://10.0.0.1:2379"


@pytest.fixture
def pems(tmp_path: Path) -> dict[str, Path]:
    ca = pki.new_ca("layers")
    paths = {}
    for name in ("file", "env", "flag"):
        ca_path = tmp_path / f"{name}-ca.pem"
        pki.write_pem(ca_path, ca.cert_pem, private=False)
        cert, key = pki.write_issued(tmp_path, name, pki.issue(ca, name, "client"))
        paths |= {f"{name}-ca": ca_path, f"{name}-cert": cert, f"{name}-key": key}
    return paths


def config_file(tmp_path: Path, pems: dict[str, Path], endpoints: str = HTTPS) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'etcd-endpoints = "{endpoints}"\npublic-ip = "10.0.0.5"\n'
        f'cacert = "{pems["file-ca"]}"\ncert = "{pems["file-cert"]}"\nkey = "{pems["file-key"]}"\n'
    )
    return path


def test_the_file_gives_the_tls_files(tmp_path: Path, pems: dict[str, Path]) -> None:
    config = resolve({}, config_file(tmp_path, pems), environ={})
    assert config.tls == TLSFiles(pems["file-ca"], pems["file-cert"], pems["file-key"])


def test_the_environment_wins_over_the_file_and_flags_over_both(
    tmp_path: Path, pems: dict[str, Path]
) -> None:
    env = {
        "VULCANO_CACERT": str(pems["env-ca"]),
        "VULCANO_CERT": str(pems["env-cert"]),
        "VULCANO_KEY": str(pems["env-key"]),
    }
    path = config_file(tmp_path, pems)
    assert resolve({}, path, environ=env).tls == TLSFiles(
        pems["env-ca"], pems["env-cert"], pems["env-key"]
    )
    flags = {k: str(pems[f"flag-{v}"]) for k, v in (("cacert", "ca"), ("cert", "cert"))}
    flags["key"] = str(pems["flag-key"])
    assert resolve(flags, path, environ=env).tls == TLSFiles(
        pems["flag-ca"], pems["flag-cert"], pems["flag-key"]
    )


def test_a_key_from_one_layer_that_does_not_match_the_cert_of_another_is_named(
    tmp_path: Path, pems: dict[str, Path]
) -> None:
    flags = {"cert": str(pems["flag-cert"])}
    with pytest.raises(ConfigError) as caught:
        resolve(flags, config_file(tmp_path, pems), environ={})
    assert str(caught.value) == (
        f"config file {tmp_path / 'agent.toml'}: key {pems['file-key']}: "
        "not the key of the certificate in --cert"
    )


def test_http_endpoints_have_no_tls(tmp_path: Path) -> None:
    config = resolve(
        {"etcd_endpoints": "http://10.0.0.1:2379", "public_ip": "10.0.0.5"}, environ={}
    )
    assert config.tls is None


@pytest.mark.parametrize(
    ("flags", "environ", "says"),
    [
        ({}, {}, "https:// etcd endpoints need --cacert"),
        ({}, {"VULCANO_CACERT": "/nonexistent/ca.pem"}, "VULCANO_CACERT /nonexistent/ca.pem:"),
        ({"cacert": "/nonexistent/ca.pem"}, {}, "--cacert /nonexistent/ca.pem: No such file"),
        ({"cacert": "ca\n.pem"}, {}, "--cacert: 'ca\\n.pem' contains control characters"),
    ],
)
def test_bad_tls_settings_name_their_source(
    flags: dict[str, str], environ: dict[str, str], says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve({"etcd_endpoints": HTTPS, "public_ip": "10.0.0.5", **flags}, environ=environ)
    assert says in str(caught.value)


def test_the_crl_file_comes_from_the_file_or_the_environment_with_tls_only(
    tmp_path: Path, pems: dict[str, Path]
) -> None:
    path = config_file(tmp_path, pems)
    path.write_text(path.read_text() + 'crl-file = "/etc/etcd/tls/crl.pem"\n')
    assert resolve({}, path, environ={}).crl_file == Path("/etc/etcd/tls/crl.pem")
    env = {"VULCANO_CRL_FILE": "/run/crl.pem"}
    assert resolve({}, path, environ=env).crl_file == Path("/run/crl.pem")
    plain = {"VULCANO_ETCD_ENDPOINTS": "http://10.0.0.1:2379", "VULCANO_PUBLIC_IP": "10.0.0.5"}
    with pytest.raises(ConfigError, match="VULCANO_CRL_FILE: needs https:// etcd endpoints"):
        resolve({}, None, environ={**plain, **env})
    with pytest.raises(ConfigError, match="VULCANO_CRL_FILE: empty path"):
        resolve({}, path, environ={"VULCANO_CRL_FILE": " "})
