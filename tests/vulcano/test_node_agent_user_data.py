"""Node user-data gives the node its agent: a config the agent itself reads, a unit
systemd runs, and a way to install it; hostile values stay values."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from agent.config import read_config_file, resolve
from tests.conftest import require
from vulcano import validators
from vulcano.cloudconfig import InputError
from vulcano.nodeconfig import (
    AGENT_BUNDLE_URL_PATH,
    AGENT_CONFIG_PATH,
    AGENT_STATE_DIR,
    AGENT_UNIT_PATH,
    INSTALL_AGENT_PATH,
    NodeSpec,
    docker_agent_unit,
    install_agent_script,
    render_node,
    written_file,
)

URL = "https://installer.example/discovery/0123456789abcdef0123456789abcdef"


def spec(**fields: object) -> NodeSpec:
    values: dict[str, object] = {"name": "node-1", "ip": "10.1.2.3", "discovery_url": URL}
    values.update(fields)
    return NodeSpec(**values)  # type: ignore[arg-type]


def agent_config_of(node: NodeSpec, tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(written_file(render_node(node).data, AGENT_CONFIG_PATH))
    return path


def test_the_node_document_with_its_agent_is_valid_cloud_config() -> None:
    require(shutil.which("cloud-init") is not None, "needs cloud-init for its schema check")
    node = spec(metadata=(("region", "eu"),), agent_bundle_url="http://10.0.0.1:8080/agent")
    assert validators.validate_with_tools(render_node(node), required=True)


def test_the_agent_reads_its_config_from_the_document(tmp_path: Path) -> None:
    node = spec(metadata=(("region", "eu"), ("disk", "ssd")), agent_ttl=7)
    config = resolve({}, agent_config_of(node, tmp_path), environ={})
    assert config.etcd_endpoints == "http://127.0.0.1:2379"
    assert config.public_ip == "10.1.2.3"
    assert config.metadata == {"region": "eu", "disk": "ssd"}
    assert config.ttl == 7
    assert str(config.state_dir) == AGENT_STATE_DIR
    assert config.subnet_env_path == Path(AGENT_STATE_DIR) / "subnet.env"


def test_a_node_without_metadata_gets_an_empty_table(tmp_path: Path) -> None:
    assert read_config_file(agent_config_of(spec(), tmp_path))["metadata"] == {}


def test_the_unit_runs_the_agent_after_etcd_and_is_started_by_cloud_init() -> None:
    data = render_node(spec()).data
    unit = written_file(data, AGENT_UNIT_PATH)
    lines = unit.splitlines()
    assert "After=etcd.service network-online.target" in lines
    assert "Wants=etcd.service network-online.target" in lines
    assert "Restart=always" in lines
    assert f"ExecStartPre={INSTALL_AGENT_PATH}" in lines
    assert "ExecStart=/opt/vulcano/bin/vulcano-agent run --config /etc/vulcano/agent.toml" in lines
    assert "StateDirectory=vulcano-agent" in lines
    assert data["runcmd"][-1] == ["systemctl", "enable", "--now", "vulcano-agent.service"]
    assert written_file(data, INSTALL_AGENT_PATH) == install_agent_script()
    assert written_file(data, AGENT_BUNDLE_URL_PATH) == ""
    assert "python3-venv" in data["packages"]


def test_the_bundle_url_reaches_its_file_unchanged() -> None:
    url = "https://prov.example:8443/agent?token=a%20b&x=1"
    data = render_node(spec(agent_bundle_url=url)).data
    assert written_file(data, AGENT_BUNDLE_URL_PATH) == url


HOSTILE_VALUES = [
    'eu"\nttl = 1',
    "\\u0022",
    "eu\u2028x",
    "\U0001f525",
    "{{ 7*7 }}",
    "'''",
]


@pytest.mark.parametrize("value", [v for v in HOSTILE_VALUES if not any(c.isspace() for c in v)])
def test_hostile_metadata_values_stay_values(value: str, tmp_path: Path) -> None:
    config = resolve({}, agent_config_of(spec(metadata=(("k", value),)), tmp_path), environ={})
    assert config.metadata == {"k": value}
    assert config.ttl == 10


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("metadata", (("bad key", "v"),)),
        ("metadata", (("k", "a,b"),)),
        ("metadata", (("k", "a b"),)),
        ("metadata", (("k", "1"), ("k", "2"))),
        ("metadata", (("k",),)),
        ("agent_ttl", 1),
        ("agent_ttl", True),
        ("agent_ttl", "10"),
        ("agent_bundle_url", "ftp://x.example/a"),
        ("agent_bundle_url", "http://x.example/a b"),
        ("agent_bundle_url", "-o/etc/passwd"),
    ],
)
def test_bad_agent_fields_are_refused_by_name(field: str, value: object) -> None:
    with pytest.raises(InputError) as refused:
        render_node(spec(**{field: value}))
    assert refused.value.field == field


def test_the_flatcar_unit_runs_the_image_as_the_agent_on_the_host() -> None:
    unit = docker_agent_unit("ghcr.io/vulcano-project/vulcano:0.1.0")
    start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    words = start.split()
    for flag in ("--privileged", "--network", "--pid", "--entrypoint"):
        assert flag in words
    assert words[words.index("--entrypoint") + 1] == "vulcano-agent"
    assert f"{AGENT_STATE_DIR}:{AGENT_STATE_DIR}" in words
    assert "/run/systemd:/run/systemd" in words
    assert words[-3:] == ["run", "--config", AGENT_CONFIG_PATH]
    with pytest.raises(InputError):
        docker_agent_unit("x y")


def test_the_install_script_names_no_value_of_any_node() -> None:
    script = install_agent_script()
    assert script.startswith("#!/bin/sh\n")
    assert "{{" not in script
    assert yaml.safe_load(yaml.safe_dump({"s": script}))["s"] == script
