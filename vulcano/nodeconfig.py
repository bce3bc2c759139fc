"""User-data for cluster nodes: an etcd member that joins through a discovery URL, and
vulcano-agent beside it as a systemd unit.

Rendered with `vulcano.cloudconfig`'s environment (every value quoted) from
templates/cloud-config/node-*. etcd's own configuration is a YAML file of quoted
scalars inside the cloud-config, so the discovery URL reaches etcd unchanged whatever
it holds: nothing on the way is a shell, an environment file or a unit line. The
agent's configuration is a TOML file of quoted strings the same way.

How the agent reaches a node: on Ubuntu/Debian (cloud-init) it is a Python venv in
/opt/vulcano. The unit's ExecStartPre (install-agent, a fixed script) does nothing when
the venv is there (a machine image that ships it), else it fetches the agent bundle —
the wheels of Vulcano and its dependencies for the node's Python — from the URL in
/etc/vulcano/agent-bundle-url (the provisioning container serves it) and installs it
offline from those wheels. On Flatcar (Docker, no Python) the same agent runs from the
Vulcano image (`docker_agent_unit`).
"""

from __future__ import annotations

import copy
import ipaddress
import re
import tomllib
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import yaml

from vulcano import cloudconfig
from vulcano.cloudconfig import Document, InputError, InvalidDocument

FLAVOURS = {"cloud-init": "node-cloud-init.yaml.j2"}
ETCD_TEMPLATE = "node-etcd.conf.yml.j2"
AGENT_CONFIG_TEMPLATE = "node-agent.toml.j2"
AGENT_UNIT_TEMPLATE = "node-agent.service.j2"
DOCKER_AGENT_UNIT_TEMPLATE = "node-agent.docker.service.j2"
INSTALL_AGENT_SCRIPT = "node-install-agent.sh"
AGENT_CONFIG_PATH = "/etc/vulcano/agent.toml"
AGENT_UNIT_PATH = "/etc/systemd/system/vulcano-agent.service"
AGENT_BUNDLE_URL_PATH = "/etc/vulcano/agent-bundle-url"
INSTALL_AGENT_PATH = "/usr/local/lib/vulcano/install-agent"
AGENT_UNIT = "vulcano-agent.service"
AGENT_VENV = "/opt/vulcano"
AGENT_BINARY = f"{AGENT_VENV}/bin/vulcano-agent"
# The unit's StateDirectory= (systemd makes it, 0700).
AGENT_STATE_DIR = "/var/lib/vulcano-agent"
# The agent's machine lease, seconds (agent/policy.py MACHINE_TTL and its bounds).
AGENT_TTL = 10
AGENT_TTL_RANGE = (2, 3600)
# The agent's own rules for metadata (agent/config.py parse_metadata).
_METADATA_KEY = re.compile(r"[A-Za-z0-9_.-]+")
_METADATA_VALUE = re.compile(r"[^,=\s]*")
ETCD_CONFIG_PATH = "/etc/etcd/vulcano.conf.yml"
# Debian's etcd.service runs `etcd $DAEMON_ARGS` with /etc/default/etcd as environment.
ETCD_DEFAULTS = f"DAEMON_ARGS=--config-file={ETCD_CONFIG_PATH}\n"
FALLBACKS = ("proxy", "exit")


@dataclass(frozen=True)
class NodeSpec:
    """One cluster node: its etcd member name, its address and the discovery URL."""

    name: str
    ip: str
    discovery_url: str
    flavour: str = "cloud-init"
    client_port: int = 2379
    peer_port: int = 2380
    data_dir: str = "/var/lib/etcd/vulcano"
    discovery_fallback: str = "proxy"
    # The agent: its machine metadata (key, value) pairs, its machine lease's TTL, and
    # where the provisioning container serves the agent bundle ("" for a machine image
    # that ships /opt/vulcano).
    metadata: tuple[tuple[str, str], ...] = ()
    agent_ttl: int = AGENT_TTL
    agent_bundle_url: str = ""


@dataclass(frozen=True)
class _Urls:
    peer: str
    client: str
    listen_client: str


def check_node(spec: NodeSpec) -> None:
    """Raise InputError naming the first field a node document cannot take."""
    if not cloudconfig.DNS_LABEL.fullmatch(spec.name):
        raise InputError("name", "use 1-63 lowercase letters, digits and '-' (it is the hostname)")
    try:
        ipaddress.ip_address(spec.ip)
    except ValueError:
        raise InputError("ip", "not an IPv4 or IPv6 address") from None
    parts = urlsplit(spec.discovery_url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise InputError("discovery_url", "must be an http(s) URL with a host")
    for field, port in (("client_port", spec.client_port), ("peer_port", spec.peer_port)):
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise InputError(field, "must be a TCP port, 1-65535")
    if not spec.data_dir.startswith("/"):
        raise InputError("data_dir", "must be an absolute path")
    if spec.discovery_fallback not in FALLBACKS:
        raise InputError("discovery_fallback", f"choose one of {', '.join(FALLBACKS)}")
    if spec.flavour not in FLAVOURS:
        raise InputError("flavour", f"choose one of {', '.join(FLAVOURS)}")
    _check_agent(spec)


def _check_agent(spec: NodeSpec) -> None:
    keys = set()
    for pair in spec.metadata:
        if len(pair) != 2:
            raise InputError("metadata", "give (key, value) pairs")
        key, value = pair
        if not isinstance(key, str) or not _METADATA_KEY.fullmatch(key):
            raise InputError("metadata", f"key {key!r}: use letters, digits, '_', '.', '-'")
        if not isinstance(value, str) or not _METADATA_VALUE.fullmatch(value):
            raise InputError("metadata", f"value of {key!r} may not hold ',', '=' or spaces")
        if key in keys:
            raise InputError("metadata", f"key {key!r} given twice")
        keys.add(key)
    low, high = AGENT_TTL_RANGE
    ttl = spec.agent_ttl
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not low <= ttl <= high:
        raise InputError("agent_ttl", f"must be a whole number of seconds, {low}-{high}")
    if spec.agent_bundle_url:
        parts = urlsplit(spec.agent_bundle_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise InputError("agent_bundle_url", "must be an http(s) URL with a host")
        if any(c.isspace() for c in spec.agent_bundle_url):
            raise InputError("agent_bundle_url", "may not hold spaces or line breaks")


def _urls(spec: NodeSpec) -> _Urls:
    address = ipaddress.ip_address(spec.ip)
    host = f"[{address}]" if address.version == 6 else str(address)
    client = f"http://{host}:{spec.client_port}"
    listen = [client]
    if not address.is_loopback:
        # The node's own agent talks to its member over loopback.
        listen.append(f"http://127.0.0.1:{spec.client_port}")
    return _Urls(
        peer=f"http://{host}:{spec.peer_port}", client=client, listen_client=",".join(listen)
    )


def etcd_config(spec: NodeSpec) -> str:
    """The etcd --config-file YAML for the node's member."""
    check_node(spec)
    template = cloudconfig.environment().get_template(ETCD_TEMPLATE)
    return template.render(spec=spec, urls=_urls(spec))


def agent_endpoint(spec: NodeSpec) -> str:
    """The etcd endpoint the node's agent uses: its own member, over loopback."""
    if ipaddress.ip_address(spec.ip).is_loopback:
        return _urls(spec).client
    return f"http://127.0.0.1:{spec.client_port}"


def agent_config(spec: NodeSpec) -> str:
    """The agent's TOML configuration (`vulcano-agent run --config`)."""
    check_node(spec)
    template = cloudconfig.environment().get_template(AGENT_CONFIG_TEMPLATE)
    return template.render(
        spec=spec, etcd_endpoint=agent_endpoint(spec), agent_state_dir=AGENT_STATE_DIR
    )


def _unit_paths() -> dict[str, str]:
    return {
        "install_agent": INSTALL_AGENT_PATH,
        "agent_binary": AGENT_BINARY,
        "agent_config": AGENT_CONFIG_PATH,
        "agent_state_dir": AGENT_STATE_DIR,
    }


def agent_unit() -> str:
    """vulcano-agent.service for a cloud-init node (the venv in /opt/vulcano)."""
    template = cloudconfig.environment().get_template(AGENT_UNIT_TEMPLATE)
    return template.render(**_unit_paths())


def docker_agent_unit(image: str) -> str:
    """vulcano-agent.service for a Flatcar node: the agent runs from the Vulcano image."""
    cloudconfig.check_image(image)
    template = cloudconfig.environment().get_template(DOCKER_AGENT_UNIT_TEMPLATE)
    return template.render(image=image, **_unit_paths())


def install_agent_script() -> str:
    """The install-agent script: fixed text, no value of any node in it."""
    return (cloudconfig.TEMPLATES / INSTALL_AGENT_SCRIPT).read_text()


def _render_text(spec: NodeSpec) -> str:
    env = cloudconfig.environment()
    template = env.get_template(FLAVOURS[spec.flavour])
    return template.render(
        spec=spec,
        etcd_config=etcd_config(spec),
        etcd_defaults=cloudconfig.Quoted(ETCD_DEFAULTS),
        agent_config=agent_config(spec),
        agent_bundle_url=spec.agent_bundle_url,
        agent_unit=agent_unit(),
        install_agent=install_agent_script(),
    )


def _placeholder(spec: NodeSpec) -> NodeSpec:
    return replace(
        spec,
        name="x",
        ip="10.0.0.1",
        discovery_url="http://x/y",
        data_dir="/x",
        metadata=tuple((f"k{i}", "v") for i, _ in enumerate(spec.metadata)),
        agent_bundle_url="http://x/b" if spec.agent_bundle_url else "",
    )


def written_file(data: Any, path: str) -> str:
    """The content cloud-init writes to `path`, from a parsed node document."""
    for entry in data.get("write_files", []):
        if entry.get("path") == path:
            content: str = entry["content"]
            return content
    raise InvalidDocument(f"the node document writes no {path}")


def _shapes(data: Any) -> tuple[Any, Any, Any]:
    """The document's shape with etcd's and the agent's configuration abstracted, and
    those files' shapes."""
    inner = yaml.safe_load(written_file(data, ETCD_CONFIG_PATH))
    try:
        agent = tomllib.loads(written_file(data, AGENT_CONFIG_PATH))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidDocument(f"the agent's configuration does not parse: {exc}") from None
    outer = copy.deepcopy(data)
    for entry in outer["write_files"]:
        if entry.get("path") in (ETCD_CONFIG_PATH, AGENT_CONFIG_PATH):
            entry["content"] = "<configuration>"
    # Metadata keys are the user's; the table's shape is how many pairs it holds.
    metadata = agent.pop("metadata", None)
    agent_shape = (_structure(agent), type(metadata).__name__, len(metadata or {}))
    return cloudconfig.shape(outer), _structure(inner), agent_shape


def _structure(value: Any) -> Any:
    """Keys and nesting only: in etcd's file every leaf is one quoted scalar."""
    if isinstance(value, dict):
        return {k: _structure(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_structure(v) for v in value]
    return type(value).__name__


def render_node(spec: NodeSpec) -> Document:
    """User-data for one cluster node: rendered, parsed, shape- and size-checked.

    Raises InputError for a field the caller must fix, InvalidDocument for a template bug.
    """
    check_node(spec)
    text = _render_text(spec)
    cloudconfig.check_size_limit(text)
    data = cloudconfig.parse(text, spec.flavour)
    placeholder = cloudconfig.parse(_render_text(_placeholder(spec)), spec.flavour)
    if _shapes(data) != _shapes(placeholder):
        raise InvalidDocument("node document's structure differs from its template's")
    content_type = cloudconfig.FLAVOURS[spec.flavour].content_type
    return Document(flavour=spec.flavour, text=text, content_type=content_type, data=data)
