"""User-data for cluster nodes: an etcd member that joins through a discovery URL.

Rendered with `vulcano.cloudconfig`'s environment (every value quoted) from
templates/cloud-config/node-*. etcd's own configuration is a YAML file of quoted
scalars inside the cloud-config, so the discovery URL reaches etcd unchanged whatever
it holds: nothing on the way is a shell, an environment file or a unit line.
"""

from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import yaml

from vulcano import cloudconfig
from vulcano.cloudconfig import Document, InputError, InvalidDocument

FLAVOURS = {"cloud-init": "node-cloud-init.yaml.j2"}
ETCD_TEMPLATE = "node-etcd.conf.yml.j2"
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


def _render_text(spec: NodeSpec) -> str:
    env = cloudconfig.environment()
    template = env.get_template(FLAVOURS[spec.flavour])
    return template.render(
        spec=spec, etcd_config=etcd_config(spec), etcd_defaults=cloudconfig.Quoted(ETCD_DEFAULTS)
    )


def _placeholder(spec: NodeSpec) -> NodeSpec:
    return replace(spec, name="x", ip="10.0.0.1", discovery_url="http://x/y", data_dir="/x")


def written_file(data: Any, path: str) -> str:
    """The content cloud-init writes to `path`, from a parsed node document."""
    for entry in data.get("write_files", []):
        if entry.get("path") == path:
            content: str = entry["content"]
            return content
    raise InvalidDocument(f"the node document writes no {path}")


def _shapes(data: Any) -> tuple[Any, Any]:
    """The document's shape with etcd's configuration abstracted, and that file's shape."""
    inner = yaml.safe_load(written_file(data, ETCD_CONFIG_PATH))
    outer = copy.deepcopy(data)
    for entry in outer["write_files"]:
        if entry.get("path") == ETCD_CONFIG_PATH:
            entry["content"] = "<etcd configuration>"
    return cloudconfig.shape(outer), _structure(inner)


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
