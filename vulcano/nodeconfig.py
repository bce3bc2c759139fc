"""User-data for cluster nodes: an etcd member that joins through a discovery URL, and
vulcano-agent beside it as a systemd unit.

Rendered with `vulcano.cloudconfig`'s environment (every value quoted) from
templates/cloud-config/node-*. etcd's configuration is a YAML file of quoted scalars in
the cloud-config, so the discovery URL reaches etcd unchanged whatever it holds (no
shell, environment file or unit line on the way); the agent's is TOML, quoted alike.

How the agent reaches a node: on Ubuntu/Debian (cloud-init) it is a Python venv in
/opt/vulcano. The unit's ExecStartPre (install-agent, a fixed script) does nothing when
the venv is there (a machine image that ships it), else it fetches the agent bundle —
the wheels of Vulcano and its dependencies for the node's Python — from the URL in
/etc/vulcano/agent-bundle-url (the provisioning container serves it) and installs it
offline from those wheels. On Flatcar and legacy CoreOS (Docker, no Python, no etcd
3.4) the same agent runs from the Vulcano image (`docker_agent_unit`) and etcd from
etcd's image (`etcd_member_unit`), as units named as the OS names them.

A node's address: given (``ip``), or ``AUTO_IP`` — found at boot by node-address.sh, which
writes the default route's source address where the two configuration files hold
`NODE_IP_MARK`, before etcd or the agent start. A TLS member whose address is found so
gets its certificate at boot too (`vulcano.nodetls.Enrolment`: node-certificate.sh, run
after node-address and before etcd).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass, replace
from urllib.parse import quote

from vulcano import cloudconfig, nodeboot, nodeshape, nodetls, sshkeys
from vulcano import image as vulcano_image
from vulcano.cloudconfig import Document, InputError, InvalidDocument
from vulcano.nodeboot import ADDRESS_SCRIPT as ADDRESS_SCRIPT
from vulcano.nodeboot import ADDRESS_SCRIPT_PATHS as ADDRESS_SCRIPT_PATHS
from vulcano.nodeboot import ADDRESS_UNIT_TEMPLATE as ADDRESS_UNIT_TEMPLATE
from vulcano.nodeboot import ENROL_UNIT_TEMPLATE as ENROL_UNIT_TEMPLATE
from vulcano.nodeboot import NODE_IP_MARK as NODE_IP_MARK
from vulcano.nodeshape import written_file as written_file  # where callers found it

FLAVOURS = {
    "cloud-init": "node-cloud-init.yaml.j2",
    "flatcar": "node-flatcar.ign.j2",
    "coreos-legacy": "node-coreos-legacy.yaml.j2",
}
# The address found at boot (see the module's docstring).
AUTO_IP = "auto"
ETCD_MEMBER_UNIT_TEMPLATE = "node-etcd-member.service.j2"
# etcd's own release image, for nodes whose OS ships none (Flatcar, CoreOS).
ETCD_IMAGE = "gcr.io/etcd-development/etcd:v3.4.34"
_DATA_URL = nodeshape.DATA_URL
_URL_WORD = re.compile(r"[A-Za-z0-9.:/\[\]-]+\Z")
_HOST_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")  # an IPv4 address or a host name
_DATA_DIR = re.compile(r"/[A-Za-z0-9._/-]*")
_HTTP_URL = "must be an http(s) URL with a host"
# cloudconfig's environment, made once: compiling the templates is most of a render.
_env = functools.cache(cloudconfig.environment)
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
    # authorized_keys lines for the node's login user (the provisioning container's key).
    ssh_keys: tuple[str, ...] = ()
    # Flatcar and CoreOS: the images the agent and etcd run from.
    image: str = vulcano_image.REFERENCE
    etcd_image: str = ETCD_IMAGE
    # The agent's etcd: "" for its own member over loopback; the members' client URLs
    # for a node past the discovery size (its etcd finds the cluster full and is only a
    # v2 proxy, which the agent's v3 client cannot use).
    etcd_endpoints: str = ""
    # The cluster's CA and this node's certificate: etcd and the agent on mutual TLS,
    # every URL https:// (None: plain http, for a cluster made without TLS).
    tls: nodetls.NodeTLS | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def auto_ip(self) -> bool:
        return self.ip == AUTO_IP


@dataclass(frozen=True)
class _Urls:
    peer: str
    client: str
    listen_client: str


def check_node(spec: NodeSpec) -> None:
    """Raise InputError naming the first field a node document cannot take."""
    if not cloudconfig.DNS_LABEL.fullmatch(spec.name):
        raise InputError("name", "use 1-63 lowercase letters, digits and '-' (it is the hostname)")
    if not spec.auto_ip:
        try:
            ipaddress.ip_address(spec.ip)
        except ValueError:
            raise InputError("ip", f"not an IPv4 or IPv6 address, nor {AUTO_IP!r}") from None
    parts = cloudconfig.split_url(spec.discovery_url, "discovery_url", _HTTP_URL)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise InputError("discovery_url", _HTTP_URL)
    for field, port in (("client_port", spec.client_port), ("peer_port", spec.peer_port)):
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise InputError(field, "must be a TCP port, 1-65535")
    if not _DATA_DIR.fullmatch(spec.data_dir):  # Flatcar's etcd unit has it on a unit line
        raise InputError("data_dir", "must be an absolute path of letters, digits, . _ - /")
    if spec.discovery_fallback not in FALLBACKS:
        raise InputError("discovery_fallback", f"choose one of {', '.join(FALLBACKS)}")
    if spec.flavour not in FLAVOURS:
        raise InputError("flavour", f"choose one of {', '.join(FLAVOURS)}")
    if spec.tls is not None:
        nodetls.check(spec.tls)
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
    (low, high), ttl = AGENT_TTL_RANGE, spec.agent_ttl
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not low <= ttl <= high:
        raise InputError("agent_ttl", f"must be a whole number of seconds, {low}-{high}")
    if spec.agent_bundle_url:
        parts = cloudconfig.split_url(spec.agent_bundle_url, "agent_bundle_url", _HTTP_URL)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise InputError("agent_bundle_url", _HTTP_URL)
        if any(c.isspace() for c in spec.agent_bundle_url):
            raise InputError("agent_bundle_url", "may not hold spaces or line breaks")
    for line in spec.ssh_keys:
        try:
            sshkeys.parse_key(line)
        except (sshkeys.SSHKeyError, TypeError) as exc:
            raise InputError("ssh_keys", str(exc)) from None
    for url in spec.etcd_endpoints.split(",") if spec.etcd_endpoints else ():
        message = f"{url!r} is not an {spec.scheme}://host:port URL"
        parts = cloudconfig.split_url(url, "etcd_endpoints", message)
        if (
            parts.scheme != spec.scheme
            or not parts.hostname
            or parts.path
            or not _URL_WORD.match(url)
        ):
            raise InputError("etcd_endpoints", message)
    if spec.flavour != "cloud-init":
        cloudconfig.check_image(spec.image)
        cloudconfig.check_image(spec.etcd_image, "etcd_image")


def _urls(spec: NodeSpec) -> _Urls:
    if spec.auto_ip:
        host, loopback = NODE_IP_MARK, False
    else:
        address = ipaddress.ip_address(spec.ip)
        host = f"[{address}]" if address.version == 6 else str(address)
        loopback = address.is_loopback
    client = f"{spec.scheme}://{host}:{spec.client_port}"
    listen = [client]
    if not loopback:
        # The node's own agent talks to its member over loopback.
        listen.append(f"{spec.scheme}://127.0.0.1:{spec.client_port}")
    return _Urls(
        peer=f"{spec.scheme}://{host}:{spec.peer_port}",
        client=client,
        listen_client=",".join(listen),
    )


def etcd_config(spec: NodeSpec) -> str:
    """The etcd --config-file YAML for the node's member."""
    check_node(spec)
    template = _env().get_template(ETCD_TEMPLATE)
    return template.render(spec=spec, urls=_urls(spec), tls=nodetls)


def agent_endpoint(spec: NodeSpec) -> str:
    """The etcd endpoint the node's agent uses: its own member, over loopback (or the
    members' client URLs it was given)."""
    if spec.etcd_endpoints:
        return spec.etcd_endpoints
    if not spec.auto_ip and ipaddress.ip_address(spec.ip).is_loopback:
        return _urls(spec).client
    return f"{spec.scheme}://127.0.0.1:{spec.client_port}"


def agent_config(spec: NodeSpec) -> str:
    """The agent's TOML configuration (`vulcano-agent run --config`)."""
    check_node(spec)
    template = _env().get_template(AGENT_CONFIG_TEMPLATE)
    public_ip = NODE_IP_MARK if spec.auto_ip else spec.ip
    return template.render(
        spec=spec,
        public_ip=public_ip,
        etcd_endpoint=agent_endpoint(spec),
        agent_state_dir=AGENT_STATE_DIR,
        tls=nodetls,
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
    template = _env().get_template(AGENT_UNIT_TEMPLATE)
    return template.render(**_unit_paths())


def docker_agent_unit(image: str, tls: bool = False) -> str:
    """vulcano-agent.service for a Flatcar node: the agent runs from the Vulcano image
    (with ``tls``, given the node's TLS directory to read and renew)."""
    cloudconfig.check_image(image)
    template = _env().get_template(DOCKER_AGENT_UNIT_TEMPLATE)
    return template.render(image=image, tls_dir=nodetls.TLS_DIR if tls else "", **_unit_paths())


def install_agent_script() -> str:
    """The install-agent script: fixed text, no value of any node in it."""
    return (cloudconfig.TEMPLATES / INSTALL_AGENT_SCRIPT).read_text()


def etcd_member_unit(spec: NodeSpec) -> str:
    """etcd-member.service for a Flatcar or CoreOS node: etcd's image under Docker."""
    template = _env().get_template(ETCD_MEMBER_UNIT_TEMPLATE)
    return template.render(
        data_dir=spec.data_dir,
        config_dir=ETCD_CONFIG_PATH.rsplit("/", 1)[0],
        etcd_config=ETCD_CONFIG_PATH,
        etcd_image=spec.etcd_image,
    )


def _data_url(text: str) -> cloudconfig.Quoted:
    return cloudconfig.Quoted(_DATA_URL + quote(text, safe=""))


def _render_text(spec: NodeSpec) -> str:
    env = _env()
    template = env.get_template(FLAVOURS[spec.flavour])
    etcd = etcd_config(spec)
    agent = agent_config(spec)
    address_script = (cloudconfig.TEMPLATES / ADDRESS_SCRIPT).read_text()
    docker = spec.flavour != "cloud-init"
    enrol = nodeboot.enrolment_parts(_env(), spec, _data_url)
    vias = nodeboot.route_hints(spec) if spec.auto_ip else []
    return template.render(
        spec=spec,
        auto_ip=spec.auto_ip,
        etcd_config=etcd,
        etcd_config_path=ETCD_CONFIG_PATH,
        etcd_defaults=cloudconfig.Quoted(ETCD_DEFAULTS),
        agent_config=agent,
        agent_config_path=AGENT_CONFIG_PATH,
        agent_bundle_url=spec.agent_bundle_url,
        agent_unit=docker_agent_unit(spec.image, spec.tls is not None) if docker else agent_unit(),
        tls_files=spec.tls.files() if spec.tls is not None else [],
        data_url=_data_url,
        etcd_unit=etcd_member_unit(spec) if docker else "",
        install_agent=install_agent_script(),
        address_script=address_script,
        address_script_path=ADDRESS_SCRIPT_PATHS[spec.flavour],
        address_unit=nodeboot.address_unit(
            _env(), spec.flavour, enrol is not None, vias, ETCD_CONFIG_PATH, AGENT_CONFIG_PATH
        ),
        vias=vias,
        enrol=enrol,
        hostname_url=_data_url(spec.name + "\n"),
        etcd_config_url=_data_url(etcd),
        agent_config_url=_data_url(agent),
        address_script_url=_data_url(address_script),
    )


def _placeholder(spec: NodeSpec) -> NodeSpec:
    return replace(
        spec,
        name="x",
        discovery_url="http://x/y",
        data_dir="/x",
        ip=AUTO_IP if spec.auto_ip else "10.0.0.1",
        metadata=tuple((f"k{i}", "v") for i, _ in enumerate(spec.metadata)),
        agent_bundle_url="http://x/b" if spec.agent_bundle_url else "",
        etcd_endpoints=f"{spec.scheme}://x:1" if spec.etcd_endpoints else "",
    )


def render_node(spec: NodeSpec) -> Document:
    """User-data for one cluster node: rendered, parsed, shape- and size-checked.

    Raises InputError for a field the caller must fix, InvalidDocument for a template bug.
    """
    check_node(spec)
    text = _render_text(spec)
    cloudconfig.check_size_limit(text)
    data = cloudconfig.parse(text, spec.flavour)
    placeholder = cloudconfig.parse(_render_text(_placeholder(spec)), spec.flavour)
    paths = (ETCD_CONFIG_PATH, AGENT_CONFIG_PATH)
    if nodeshape.shapes(data, *paths) != nodeshape.shapes(placeholder, *paths):
        raise InvalidDocument("node document's structure differs from its template's")
    content_type = cloudconfig.FLAVOURS[spec.flavour].content_type
    return Document(flavour=spec.flavour, text=text, content_type=content_type, data=data)
