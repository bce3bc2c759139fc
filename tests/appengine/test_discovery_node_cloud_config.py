"""Node user-data configures etcd with the discovery URL, unchanged whatever it holds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.appengine.discovery_helpers import (
    MemberFactory,
    member_names,
    new_discovery_url,
    start_all,
)
from tests.conftest import require
from vulcano import validators
from vulcano.cloudconfig import InputError
from vulcano.lab.wsgi import WsgiServer
from vulcano.nodeconfig import ETCD_CONFIG_PATH, NodeSpec, render_node, written_file

pytest_plugins = ("tests.appengine.discovery_fixtures",)

URL = "https://installer.example/discovery/0123456789abcdef0123456789abcdef"


def etcd_settings(spec: NodeSpec) -> dict[str, str]:
    document = render_node(spec)
    parsed: dict[str, str] = yaml.safe_load(written_file(document.data, ETCD_CONFIG_PATH))
    return parsed


def test_node_document_is_valid_cloud_config_that_runs_etcd_with_discovery() -> None:
    require(shutil.which("cloud-init") is not None, "needs cloud-init for its schema check")
    document = render_node(NodeSpec(name="node-1", ip="10.1.2.3", discovery_url=URL))
    assert document.text.startswith("#cloud-config\n")
    assert validators.validate_with_tools(document, required=True)
    data = document.data
    assert data["hostname"] == "node-1"
    assert "etcd-server" in data["packages"]
    assert written_file(data, "/etc/default/etcd") == (
        f"DAEMON_ARGS=--config-file={ETCD_CONFIG_PATH}\n"
    )
    assert etcd_settings(NodeSpec(name="node-1", ip="10.1.2.3", discovery_url=URL)) == {
        "name": "node-1",
        "data-dir": "/var/lib/etcd/vulcano",
        "listen-peer-urls": "http://10.1.2.3:2380",
        "initial-advertise-peer-urls": "http://10.1.2.3:2380",
        "listen-client-urls": "http://10.1.2.3:2379,http://127.0.0.1:2379",
        "advertise-client-urls": "http://10.1.2.3:2379",
        "discovery": URL,
        "discovery-fallback": "proxy",
        "enable-grpc-gateway": True,  # the agent speaks etcd's JSON gateway
    }


def test_ipv6_nodes_get_bracketed_urls() -> None:
    settings_ = etcd_settings(NodeSpec(name="n6", ip="fd00::7", discovery_url=URL))
    assert settings_["listen-peer-urls"] == "http://[fd00::7]:2380"
    assert settings_["advertise-client-urls"] == "http://[fd00::7]:2379"


HOSTILE = [
    'https://x.example/a"\n  evil: 1',
    "https://x.example/a\n- [sh, -c, 'rm -rf /']\nruncmd: []",
    "http://x.example/$(reboot)`id`;&|<>'\"\\",
    "https://x.example/a\x00\x1b[31m\x7f\x85\u2028\ufeff",
    "https://x.example/%0a%22{{ 7*7 }}{% raw %}",
    "https://x.example/a: b\n#cloud-config\nusers: [root]",
    "https://x.example/" + "\U0001f525" * 50,
]


@pytest.mark.parametrize("url", HOSTILE)
def test_hostile_discovery_urls_reach_etcd_unchanged(url: str) -> None:
    assert etcd_settings(NodeSpec(name="node-1", ip="10.1.2.3", discovery_url=url)) == {
        **etcd_settings(NodeSpec(name="node-1", ip="10.1.2.3", discovery_url=URL)),
        "discovery": url,
    }


@settings(max_examples=200, deadline=None)
@given(
    scheme=st.sampled_from(["http://", "https://"]),
    host=st.from_regex(r"[a-z0-9.-]{1,30}(:[0-9]{1,5})?", fullmatch=True),
    rest=st.text(max_size=200),
)
def test_any_discovery_url_is_carried_unchanged(scheme: str, host: str, rest: str) -> None:
    url = f"{scheme}{host}/{rest}"
    document = render_node(NodeSpec(name="n", ip="192.0.2.1", discovery_url=url))
    assert yaml.safe_load(document.text) == document.data
    inner = yaml.safe_load(written_file(document.data, ETCD_CONFIG_PATH))
    assert inner["discovery"] == url
    assert set(inner) == {
        "name",
        "data-dir",
        "listen-peer-urls",
        "initial-advertise-peer-urls",
        "listen-client-urls",
        "advertise-client-urls",
        "discovery",
        "discovery-fallback",
        "enable-grpc-gateway",
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Node_1"),
        ("name", "a\nb"),
        ("name", ""),
        ("ip", "10.0.0.300"),
        ("ip", "node-1"),
        ("discovery_url", "ftp://x.example/a"),
        ("discovery_url", "not a url"),
        ("discovery_url", "https:///no-host"),
        ("client_port", 0),
        ("peer_port", 65536),
        ("data_dir", "relative/dir"),
        ("discovery_fallback", "retry"),
        ("flavour", "windows"),
    ],
)
def test_bad_node_fields_are_refused_by_name(field: str, value: object) -> None:
    fields: dict[str, object] = {"name": "node-1", "ip": "10.1.2.3", "discovery_url": URL}
    fields[field] = value
    with pytest.raises(InputError) as refused:
        render_node(NodeSpec(**fields))  # type: ignore[arg-type]
    assert refused.value.field == field


@pytest.mark.slow
def test_etcd_configured_by_rendered_node_documents_forms_a_cluster(
    discovery_server: WsgiServer, members: MemberFactory, tmp_path: Path
) -> None:
    url = new_discovery_url(discovery_server, 3)
    cluster = []
    for i in range(3):
        # The launcher's own flags are ignored: etcd --config-file reads only the file.
        member = members(f"e{i}", "--config-file", str(tmp_path / f"node-{i}.yml"))
        _, client_port = member.host_port
        peer_port = int(member.peer_url.rsplit(":", 1)[1])
        spec = NodeSpec(
            name=f"node-{i}",
            ip="127.0.0.1",
            discovery_url=url,
            client_port=client_port,
            peer_port=peer_port,
            data_dir=str(member.data_dir),
        )
        config = written_file(render_node(spec).data, ETCD_CONFIG_PATH)
        (tmp_path / f"node-{i}.yml").write_text(config)
        cluster.append(member)
    start_all(cluster)
    assert member_names(cluster[0]) == ["node-0", "node-1", "node-2"]
