"""Agent config: defaults → file → VULCANO_* environment → flags, and bad values refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import DEFAULT_RUN_DIR, ConfigError, parse_metadata, resolve
from agent.membership.identity import machine_id

BASE = {"etcd_endpoints": "http://10.0.0.1:2379", "public_ip": "10.0.0.5"}


def test_defaults() -> None:
    config = resolve(BASE, environ={})
    assert config.ttl == 10
    assert config.overlay is True
    assert config.metadata == {}
    assert config.machine_id is None
    assert config.subnet_env_path == DEFAULT_RUN_DIR / "subnet.env"


def test_flag_wins_over_environment_which_wins_over_file(tmp_path: Path) -> None:
    file = tmp_path / "agent.toml"
    file.write_text(
        'etcd-endpoints = "http://10.0.0.9:2379"\npublic-ip = "10.0.0.7"\nttl = 30\n'
        'metadata = { region = "eu" }\nmachine_id = "from-file"\n'
    )
    env = {"VULCANO_TTL": "20", "VULCANO_PUBLIC_IP": "10.0.0.8"}
    config = resolve({"public_ip": "10.0.0.6"}, config_file=file, environ=env)
    assert config.public_ip == "10.0.0.6"  # flag
    assert config.ttl == 20  # environment over file
    assert config.etcd_endpoints == "http://10.0.0.9:2379"  # file
    assert config.metadata == {"region": "eu"}
    assert config.machine_id == "from-file"


def test_config_file_can_come_from_the_environment(tmp_path: Path) -> None:
    file = tmp_path / "agent.toml"
    file.write_text('etcd_endpoints = "10.0.0.9"\npublic_ip = "10.0.0.7"\noverlay = false\n')
    config = resolve({}, environ={"VULCANO_CONFIG": str(file)})
    assert config.overlay is False
    assert config.public_ip == "10.0.0.7"


def test_subnet_env_goes_to_the_state_dir_when_one_is_given(tmp_path: Path) -> None:
    config = resolve({**BASE, "state_dir": str(tmp_path)}, environ={})
    assert config.subnet_env_path == tmp_path / "subnet.env"


def test_metadata_parses_pairs() -> None:
    assert parse_metadata("region=eu, disk=ssd,") == {"region": "eu", "disk": "ssd"}
    assert parse_metadata("empty=") == {"empty": ""}


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({"public_ip": "10.0.0.5"}, {}, "no etcd endpoints"),
        ({"etcd_endpoints": "http://e:2379"}, {}, "no public IP"),
        ({**BASE, "etcd_endpoints": "ftp://e"}, {}, "--etcd-endpoints: .*scheme"),
        ({**BASE, "etcd_endpoints": "http://e:port"}, {}, "port is not a number"),
        ({**BASE, "public_ip": "10.0.0.300"}, {}, "--public-ip: '10.0.0.300' is not an IPv4"),
        ({**BASE, "public_ip": "0.0.0.0"}, {}, "cannot be a node's public IP"),
        ({**BASE, "public_ip": "127.0.0.1"}, {}, "cannot be a node's public IP"),
        ({**BASE, "machine_id": "a/b"}, {}, "--machine-id: 'a/b'"),
        ({**BASE, "machine_id": "x" * 65}, {}, "--machine-id"),
        ({**BASE, "metadata": "region"}, {}, "--metadata: 'region' is not key=value"),
        ({**BASE, "metadata": "a b=c"}, {}, "metadata key 'a b'"),
        ({**BASE, "metadata": "a=b=c"}, {}, "metadata value 'b=c'"),
        ({**BASE, "metadata": "a=1,a=2"}, {}, "given twice"),
        ({**BASE, "ttl": "ten"}, {}, "--ttl: 'ten' is not a whole number"),
        ({**BASE, "ttl": "1"}, {}, "--ttl: 1 must be between 2 and 3600"),
        ({**BASE, "subnet_ttl": "0"}, {}, "--subnet-ttl: 0 must be between"),
        ({**BASE, "prefix": "vulcano"}, {}, "--prefix: keyspace prefix must start"),
        ({**BASE, "state_dir": " "}, {}, "--state-dir: empty path"),
        (BASE, {"VULCANO_TTL": "-3"}, "VULCANO_TTL: -3 must be between"),
        (BASE, {"VULCANO_OVERLAY": "maybe"}, "VULCANO_OVERLAY: 'maybe' is not true or false"),
    ],
)
def test_bad_values_are_refused_naming_field_and_source(
    flags: dict[str, str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve(flags, environ=env)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("ttl = ", "not valid TOML"),
        ('colour = "red"', "unknown setting 'colour'"),
        ('etcd-endpoints = "e"\npublic-ip = "10.0.0.1"\nttl = "soon"', "ttl: 'soon'"),
    ],
)
def test_bad_config_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    file = tmp_path / "agent.toml"
    file.write_text(content)
    with pytest.raises(ConfigError, match=message):
        resolve({}, config_file=file, environ={})


def test_missing_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        resolve(BASE, config_file=tmp_path / "nope.toml", environ={})


def test_machine_id_is_generated_once_and_kept(tmp_path: Path) -> None:
    missing = tmp_path / "no-machine-id"
    first = machine_id(tmp_path / "state", etc_machine_id=missing)
    assert len(first) == 32
    assert machine_id(tmp_path / "state", etc_machine_id=missing) == first
    etc = tmp_path / "machine-id"
    etc.write_text("abc123\n")
    assert machine_id(tmp_path / "state", etc_machine_id=etc) == "abc123"


def test_the_vulcano_cli_endpoint_variable_also_sets_the_etcd_endpoints() -> None:
    config = resolve({"public_ip": "10.0.0.5"}, environ={"VULCANO_ENDPOINT": "http://10.0.0.2"})
    assert config.etcd_endpoints == "http://10.0.0.2"


def test_the_agents_own_endpoint_variable_wins_over_the_alias() -> None:
    env = {"VULCANO_ENDPOINT": "http://10.0.0.2", "VULCANO_ETCD_ENDPOINTS": "http://10.0.0.3"}
    assert resolve({"public_ip": "10.0.0.5"}, environ=env).etcd_endpoints == "http://10.0.0.3"
