"""Every node's user-data, in each flavour, passes the real validators (`cloud-init
schema`, `ignition-validate`) and carries what a node needs: its etcd member joining
through the cluster's discovery URL, the agent as a unit, the container's SSH key and
the cluster's name; its address given, or found at boot."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from container.services import clusters, nodes
from container.services.installer import Installer
from container.ssh.keys import public_key_line as ensure_container_key
from container.store import Store
from tests.conftest import require
from tests.container.clusters.conftest import Install
from vulcano import cloudconfig, nodeconfig, validators

FLAVOURS = list(nodeconfig.FLAVOURS)


@pytest.fixture
def make(store: Store, state_dir: Path, install: Install) -> Any:
    installer = Installer.configured(state_dir, install.installer_url)

    def make(name: str, flavour: str, size: int = 3, **kw: Any) -> clusters.ClusterRecord:
        return clusters.create(store, name, size, flavour, installer=installer, **kw)

    return make


def etcd_of(document: cloudconfig.Document) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        nodeconfig.written_file(document.data, nodeconfig.ETCD_CONFIG_PATH)
    )
    return loaded


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_every_nodes_document_passes_the_real_validator(
    make: Any, store: Store, flavour: str
) -> None:
    require(validators.validator_available(flavour), f"needs {flavour}'s validator")
    record = make("v", flavour, size=3, node_ips=("10.20.0.7",))
    for node in (1, 2, 3):
        document = nodes.user_data(store, "v", node)
        assert validators.validate_with_tools(document, required=True)
        assert document.size <= cloudconfig.MAX_DOCUMENT_BYTES
        etcd = etcd_of(document)
        assert etcd["name"] == f"v-{node}"
        assert etcd["discovery"] == record.discovery_url


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_document_carries_the_key_the_agent_and_the_cluster(
    make: Any, store: Store, state_dir: Path, flavour: str
) -> None:
    make("c", flavour, size=1)
    document = nodes.user_data(store, "c")
    key = ensure_container_key(state_dir)
    agent = nodeconfig.written_file(document.data, nodeconfig.AGENT_CONFIG_PATH)
    assert '"cluster" = "c"' in agent
    if flavour == "flatcar":
        assert document.data["passwd"]["users"][0]["sshAuthorizedKeys"] == [key]
        units = {u["name"]: u for u in document.data["systemd"]["units"]}
    elif flavour == "coreos-legacy":
        assert document.data["ssh_authorized_keys"] == [key]  # CoreOS gives them to core
    else:
        # cloud-init: for a core user (fleetctl's login), with sudo, as on Flatcar
        [core] = [u for u in document.data["users"] if u != "default"]
        assert core["name"] == "core" and core["ssh_authorized_keys"] == [key]
        assert core["sudo"] == "ALL=(ALL) NOPASSWD:ALL"
    if flavour != "flatcar":
        if flavour == "coreos-legacy":
            units = {u["name"]: u for u in document.data["coreos"]["units"]}
        else:
            path = nodeconfig.AGENT_UNIT_PATH
            units = {
                nodeconfig.AGENT_UNIT: {"content": nodeconfig.written_file(document.data, path)}
            }
    agent_unit = units[nodeconfig.AGENT_UNIT]
    text = agent_unit.get("contents") or agent_unit.get("content")
    assert "vulcano-agent" in text and "run --config /etc/vulcano/agent.toml" in text
    if flavour != "cloud-init":
        etcd_unit = units["etcd-member.service"]
        body = etcd_unit.get("contents") or etcd_unit.get("content")
        assert nodeconfig.ETCD_IMAGE in body and "--config-file /etc/etcd/vulcano.conf.yml" in body


def test_the_container_key_is_an_ed25519_pair_ssh_keygen_reads(state_dir: Path) -> None:
    require(shutil.which("ssh-keygen") is not None, "needs OpenSSH's ssh-keygen")
    line = ensure_container_key(state_dir)
    assert line.startswith("ssh-ed25519 ")
    assert ensure_container_key(state_dir) == line  # made once
    private = state_dir / "id_ed25519"
    assert private.stat().st_mode & 0o777 == 0o600
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(private)], capture_output=True, text=True, check=True
    ).stdout
    assert derived.split()[:2] == line.split()[:2]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_given_address_is_the_members_own(make: Any, store: Store, flavour: str) -> None:
    make("g", flavour, size=2, node_ips=("10.20.0.7",))
    etcd = etcd_of(nodes.user_data(store, "g", 1))
    assert etcd["initial-advertise-peer-urls"] == "http://10.20.0.7:2380"
    assert etcd["advertise-client-urls"] == "http://10.20.0.7:2379"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_an_address_not_given_is_found_at_boot(make: Any, store: Store, flavour: str) -> None:
    record = make("a", flavour, size=2, node_ips=("10.20.0.7",))
    document = nodes.user_data(store, "a", 2)
    etcd = etcd_of(document)
    assert etcd["advertise-client-urls"] == f"http://{nodeconfig.NODE_IP_MARK}:2379"
    agent = nodeconfig.written_file(document.data, nodeconfig.AGENT_CONFIG_PATH)
    assert f'public-ip = "{nodeconfig.NODE_IP_MARK}"' in agent
    script = nodeconfig.ADDRESS_SCRIPT_PATHS[flavour]
    assert "node-address" in nodeconfig.written_file(document.data, script)
    # found as the source of the route towards its peers: its member, then discovery
    discovery = urlsplit(record.discovery_url).hostname
    if flavour == "cloud-init":
        first = document.data["runcmd"][0]
        assert first == [
            script, "--via", f"10.20.0.7,{discovery}", nodeconfig.ETCD_CONFIG_PATH,
            nodeconfig.AGENT_CONFIG_PATH,
        ]  # fmt: skip
    else:
        vias = f"--via 10.20.0.7 --via {discovery}"
        assert f"{script} {vias} {nodeconfig.ETCD_CONFIG_PATH}" in document.text


def test_the_address_script_fills_in_the_default_routes_source(tmp_path: Path) -> None:
    """The boot script itself, on this machine's own routing table."""
    require(shutil.which("ip") is not None, "needs iproute2's ip")
    route = subprocess.run(
        ["ip", "-4", "-o", "route", "get", "192.0.2.1"], capture_output=True, text=True
    )
    require(route.returncode == 0 and " src " in route.stdout, "needs an IPv4 default route")
    expected = route.stdout.split(" src ")[1].split()[0]
    script = tmp_path / "node-address"
    script.write_text((cloudconfig.TEMPLATES / nodeconfig.ADDRESS_SCRIPT).read_text())
    script.chmod(0o755)
    config = tmp_path / "etcd.yml"
    config.write_text(f'advertise-client-urls: "http://{nodeconfig.NODE_IP_MARK}:2379"\n')
    subprocess.run([str(script), str(config)], check=True, capture_output=True, timeout=30)
    assert config.read_text() == f'advertise-client-urls: "http://{expected}:2379"\n'
    subprocess.run([str(script), str(config)], check=True, capture_output=True, timeout=30)
    assert expected in config.read_text()  # a second boot changes nothing


def test_the_address_script_takes_the_route_towards_the_first_peer_that_routes(
    tmp_path: Path,
) -> None:
    """With --via hosts (as the user-data gives them) on this machine's own routing table:
    a name that does not resolve is passed over, loopback routes from 127.0.0.1."""
    require(shutil.which("ip") is not None, "needs iproute2's ip")
    script = tmp_path / "node-address"
    script.write_text((cloudconfig.TEMPLATES / nodeconfig.ADDRESS_SCRIPT).read_text())
    script.chmod(0o755)
    config = tmp_path / "agent.toml"
    config.write_text(f'public-ip = "{nodeconfig.NODE_IP_MARK}"\n')
    argv = [str(script), "--via", "nowhere.invalid,127.0.0.1", "--via", "192.0.2.1", str(config)]
    done = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30)
    assert config.read_text() == 'public-ip = "127.0.0.1"\n', done.stderr
    assert "uses 127.0.0.1" in done.stderr


def test_flatcar_files_are_data_urls_ignition_decodes(make: Any, store: Store) -> None:
    make("f", "flatcar", size=1)
    document = nodes.user_data(store, "f")
    data = json.loads(document.text)
    paths = [f["path"] for f in data["storage"]["files"]]
    assert nodeconfig.ETCD_CONFIG_PATH in paths and nodeconfig.AGENT_CONFIG_PATH in paths
    modes = {f["path"]: f["mode"] for f in data["storage"]["files"]}
    assert modes[nodeconfig.AGENT_CONFIG_PATH] == 0o600
    hostname = next(f for f in data["storage"]["files"] if f["path"] == "/etc/hostname")
    assert hostname["contents"]["source"] == "data:,f-1%0A"


def test_nodes_past_the_members_give_their_agent_the_members(make: Any, store: Store) -> None:
    ips = ("10.20.0.1", "10.20.0.2", "10.20.0.3")
    record = make("big", "cloud-init", size=4, node_ips=ips)
    assert record.etcd_size == 3
    for node in (4,):
        document = nodes.user_data(store, "big", node)
        agent = nodeconfig.written_file(document.data, nodeconfig.AGENT_CONFIG_PATH)
        members = ",".join(f"http://{ip}:2379" for ip in ips)
        assert f'etcd-endpoints = "{members}"' in agent
        assert etcd_of(document)["discovery-fallback"] == "proxy"
    member = nodes.user_data(store, "big", 3)
    agent = nodeconfig.written_file(member.data, nodeconfig.AGENT_CONFIG_PATH)
    assert 'etcd-endpoints = "http://127.0.0.1:2379"' in agent


def test_an_agent_only_node_waits_for_its_members(vulcano: Any, state_dir: Path) -> None:
    assert vulcano("cluster", "create", "two", "--size", "2").exit_code == 0
    result = vulcano("cluster", "user-data", "two", "--node", "2")
    assert result.exit_code == 1
    assert "joins as an agent-only node" in result.output
    assert "once the 1 etcd member(s) (nodes 1-1) have come up" in result.output
