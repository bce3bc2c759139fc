"""Hostile input to node user-data, from the core renderer and from the container's
cluster records: a valid document with every value in its place, or the error naming
the field.

Budgets (derandomized: tests/conftest.py): 600 node specs (one hostile field each, every
field and flavour), 100 oversized values, 300 cluster records. Size limit: the rendered
document, 64 KiB (cloudconfig.MAX_DOCUMENT_BYTES); a value long enough to pass it is
refused as DocumentTooLarge. How long the renderer takes at that limit:
bench/hostile_inputs.py.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from typing import Any

import pytest
import yaml
from hypothesis import event, given, settings
from hypothesis import strategies as st

from container.services import nodes
from container.services.clusters import ClusterRecord
from container.services.errors import ClusterInputError, NodeNotReady
from tests.vulcano.hostile_values import hostile
from vulcano import cloudconfig, nodeconfig
from vulcano.cloudconfig import DocumentTooLarge, InputError
from vulcano.lab.sshkeys import ed25519_line
from vulcano.nodeconfig import (
    AGENT_BUNDLE_URL_PATH,
    AGENT_CONFIG_PATH,
    ETCD_CONFIG_PATH,
    NODE_IP_MARK,
    NodeSpec,
    render_node,
    written_file,
)

KEY = ed25519_line("operator")
GOOD = NodeSpec(
    name="node-1",
    ip="10.1.2.3",
    discovery_url="https://installer.example/discovery/0123456789abcdef0123456789abcdef",
    metadata=(("cluster", "prod"), ("region", "eu")),
    agent_bundle_url="http://10.0.0.1:8080/agent-bundle",
    ssh_keys=(KEY,),
)
# The text fields a node spec takes, each with a value it accepts.
TEXT_FIELDS = {
    "name": "node-1",
    "ip": "10.1.2.3",
    "discovery_url": GOOD.discovery_url,
    "data_dir": "/var/lib/etcd/vulcano",
    "discovery_fallback": "proxy",
    "agent_bundle_url": GOOD.agent_bundle_url,
    "etcd_endpoints": "http://10.0.0.2:2379,http://10.0.0.3:2379",
    "image": nodeconfig.vulcano_image.REFERENCE,
    "etcd_image": nodeconfig.ETCD_IMAGE,
    "flavour": "cloud-init",
    "metadata_key": "region",
    "metadata_value": "eu",
    "ssh_key_comment": "operator",
}
INT_FIELDS = ("client_port", "peer_port", "agent_ttl")
# The field an error must name for each hostile value.
NAMED = {"metadata_key": "metadata", "metadata_value": "metadata", "ssh_key_comment": "ssh_keys"}
ETCD_KEYS = {
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
AGENT_KEYS = {"etcd-endpoints", "public-ip", "state-dir", "ttl", "metadata"}


def with_value(spec: NodeSpec, field: str, value: Any) -> NodeSpec:
    if field == "metadata_key":
        return replace(spec, metadata=(("cluster", "prod"), (value, "eu")))
    if field == "metadata_value":
        return replace(spec, metadata=(("cluster", "prod"), ("region", value)))
    if field == "ssh_key_comment":
        return replace(spec, ssh_keys=(KEY.rsplit(" ", 1)[0] + " " + value,))
    return replace(spec, **{field: value})


def reparse(text: str, flavour: str) -> Any:
    """The document as the machine's boot reads it, parsed here on our own."""
    if flavour == "flatcar":
        return json.loads(text)
    assert text.startswith("#cloud-config\n")
    return yaml.safe_load(text)


def leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in leaves(v)]
    return [value]


def hostname_of(data: Any, flavour: str) -> str:
    if flavour == "flatcar":
        return written_file(data, "/etc/hostname").removesuffix("\n")
    return str(data["hostname"])


def keys_of(data: Any, flavour: str) -> list[str]:
    if flavour == "flatcar":
        return list(data["passwd"]["users"][0]["sshAuthorizedKeys"])
    if flavour == "coreos-legacy":
        return list(data["ssh_authorized_keys"])
    core = next(u for u in data["users"] if isinstance(u, dict) and u.get("name") == "core")
    return list(core["ssh_authorized_keys"])


def baseline(flavour: str, metadata: int, auto: bool, bundle: bool, endpoints: bool) -> Any:
    """The shape of a document of benign values with the same optional parts."""
    spec = replace(
        GOOD,
        flavour=flavour,
        ip=nodeconfig.AUTO_IP if auto else "10.9.9.9",
        metadata=tuple((f"k{i}", "v") for i in range(metadata)),
        agent_bundle_url="http://b.example/b" if bundle else "",
        etcd_endpoints="http://10.0.0.9:2379" if endpoints else "",
    )
    return shapes(render_node(spec).data)


def shapes(data: Any) -> Any:
    etcd = yaml.safe_load(written_file(data, ETCD_CONFIG_PATH))
    agent = tomllib.loads(written_file(data, AGENT_CONFIG_PATH))
    return (
        cloudconfig.shape(_without_configs(data)),
        sorted(etcd),
        sorted(agent),
        len(agent["metadata"]),
    )


def _without_configs(data: Any) -> Any:
    text = json.dumps(data)
    copy = json.loads(text)
    for entry in copy.get("write_files", []) + copy.get("storage", {}).get("files", []):
        if entry.get("path") in (ETCD_CONFIG_PATH, AGENT_CONFIG_PATH):
            entry.pop("content", None)
            entry.pop("contents", None)
    return copy


def check_document(spec: NodeSpec, document: cloudconfig.Document) -> None:
    """Everything a node boots from holds exactly the values given, each in its place."""
    assert document.size <= cloudconfig.MAX_DOCUMENT_BYTES
    data = reparse(document.text, spec.flavour)
    assert data == document.data
    etcd = yaml.safe_load(written_file(data, ETCD_CONFIG_PATH))
    assert set(etcd) == ETCD_KEYS
    assert etcd["name"] == spec.name
    assert etcd["data-dir"] == spec.data_dir
    assert etcd["discovery"] == spec.discovery_url
    assert etcd["discovery-fallback"] == spec.discovery_fallback
    assert leaves(etcd).count(spec.discovery_url) == 1
    agent = tomllib.loads(written_file(data, AGENT_CONFIG_PATH))
    assert set(agent) == AGENT_KEYS
    assert agent["metadata"] == dict(spec.metadata)
    assert agent["ttl"] == spec.agent_ttl
    assert agent["public-ip"] == (NODE_IP_MARK if spec.auto_ip else spec.ip)
    assert agent["etcd-endpoints"] == nodeconfig.agent_endpoint(spec)
    if spec.flavour == "cloud-init":
        assert written_file(data, AGENT_BUNDLE_URL_PATH) == spec.agent_bundle_url
    assert hostname_of(data, spec.flavour) == spec.name
    assert keys_of(data, spec.flavour) == list(spec.ssh_keys)
    expected = baseline(
        spec.flavour,
        len(spec.metadata),
        spec.auto_ip,
        bool(spec.agent_bundle_url),
        bool(spec.etcd_endpoints),
    )
    assert shapes(data) == expected


def render_or_refuse(spec: NodeSpec, field: str) -> str:
    """Render; the outcome's name. Fails on any error but the project's own, by field."""
    try:
        document = render_node(spec)
    except InputError as exc:
        assert exc.field == NAMED.get(field, field), exc
        assert exc.message.strip()
        return "refused"
    except DocumentTooLarge as exc:
        assert "64 KiB" in str(exc)
        return "too large"
    check_document(spec, document)
    return "rendered"


values = st.one_of(
    [
        st.tuples(st.just(field), hostile(valid), st.sampled_from(list(nodeconfig.FLAVOURS)))
        for field, valid in TEXT_FIELDS.items()
    ]
    + [
        st.tuples(
            st.just(field),
            st.one_of(st.integers(-(2**70), 2**70), st.booleans(), st.integers(0, 70000)),
            st.sampled_from(list(nodeconfig.FLAVOURS)),
        )
        for field in INT_FIELDS
    ]
)


@settings(max_examples=600)
@given(case=values)
def test_node_specs_render_with_every_value_in_place_or_are_refused_by_field(
    case: tuple[str, Any, str],
) -> None:
    field, value, flavour = case
    base = replace(GOOD, flavour=flavour)
    if field == "flavour":
        base = GOOD
    outcome = render_or_refuse(with_value(base, field, value), field)
    event(f"{field}: {outcome}")


LIMIT = cloudconfig.MAX_DOCUMENT_BYTES


@settings(max_examples=100)
@given(
    field=st.sampled_from(["discovery_url", "data_dir", "agent_bundle_url", "metadata_value"]),
    length=st.sampled_from([LIMIT // 2, LIMIT - 1, LIMIT, LIMIT + 1, 2 * LIMIT]),
    filler=st.sampled_from(["a", "é", "\n", "%"]),
    flavour=st.sampled_from(list(nodeconfig.FLAVOURS)),
)
def test_values_near_and_past_the_document_limit_are_refused_or_fit(
    field: str, length: int, filler: str, flavour: str
) -> None:
    # built here, not drawn: hypothesis would print a 64 KiB example
    value = (TEXT_FIELDS[field] + filler * length)[:length]
    outcome = render_or_refuse(with_value(replace(GOOD, flavour=flavour), field, value), field)
    event(outcome)
    if flavour == "cloud-init" and len(value.encode()) >= LIMIT:  # it writes every field
        assert outcome != "rendered"


RECORD = ClusterRecord(
    name="prod",
    size=5,
    flavour="cloud-init",
    network="10.244.0.0/16",
    discovery_url=GOOD.discovery_url,
    etcd_size=3,
    node_ips=("10.0.0.2", "10.0.0.3", "10.0.0.4"),
    agent_bundle_url=GOOD.agent_bundle_url,
    endpoints="http://10.0.0.2:2379",
)
# What a cluster record holds that the installer, a flag or discovery gave it.
RECORD_FIELDS = {
    "name": "prod",
    "flavour": "cloud-init",
    "discovery_url": GOOD.discovery_url,
    "agent_bundle_url": GOOD.agent_bundle_url,
    "endpoints": "http://10.0.0.2:2379",
}


@settings(max_examples=300)
@given(
    field=st.sampled_from([*RECORD_FIELDS, "node_ips"]),
    data=st.data(),
    node=st.sampled_from([1, 4]),
)
def test_cluster_records_make_node_user_data_or_name_the_flag(
    field: str, data: st.DataObject, node: int
) -> None:
    if field == "node_ips":
        ips = data.draw(st.lists(hostile("10.0.0.2"), min_size=1, max_size=3), label="ips")
        record = replace(RECORD, node_ips=tuple(ips))
    else:
        value = data.draw(hostile(RECORD_FIELDS[field]), label=field)
        record = replace(RECORD, **{field: value})
        if field == "endpoints":
            record = replace(record, node_ips=())
    try:
        document = nodes.render(record, node, KEY, endpoints=record.endpoints, tools=False)
    except ClusterInputError as exc:
        assert exc.message.strip()
        event(f"{field}: refused as {exc.field}")
        return
    except NodeNotReady:
        event(f"{field}: not ready")
        return
    except DocumentTooLarge:
        event(f"{field}: too large")
        return
    spec = nodes.node_spec(record, node, KEY, record.endpoints)
    check_document(spec, document)
    event(f"{field}: rendered")


def test_the_property_fails_on_a_value_out_of_its_place() -> None:
    """The check itself can fail: a document whose discovery URL is not the one given."""
    document = render_node(GOOD)
    with pytest.raises(AssertionError):
        check_document(replace(GOOD, discovery_url=GOOD.discovery_url + "x"), document)
