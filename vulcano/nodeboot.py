"""What a node whose address is not known in advance runs at boot, before etcd starts.

node-address.sh (`address_unit` on Flatcar and CoreOS, a runcmd entry on cloud-init)
finds the node's address as the source of its route towards its peers (`route_hints`:
the panel it enrols with, the members it is given, the discovery service; else the
default route) and writes it where the configuration files hold `NODE_IP_MARK`.
node-certificate.sh (`enrolment_parts`) then gets a TLS member's certificate from the
panel for a key it makes (`vulcano.nodetls.Enrolment`). `vulcano.nodeconfig` renders
them into the node's user-data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import jinja2

from vulcano import cloudconfig, nodetls

if TYPE_CHECKING:
    from vulcano.nodeconfig import NodeSpec

NODE_IP_MARK = "@NODE_IP@"
ADDRESS_SCRIPT = "node-address.sh"
ADDRESS_UNIT_TEMPLATE = "node-address.service.j2"
# Flatcar's /usr is read-only: its scripts live under /opt.
ADDRESS_SCRIPT_PATHS = {
    "cloud-init": "/usr/local/lib/vulcano/node-address",
    "flatcar": "/opt/vulcano/lib/node-address",
    "coreos-legacy": "/opt/vulcano/lib/node-address",
}
ENROL_UNIT_TEMPLATE = "node-certificate.service.j2"
# Who owns a node's TLS files: etcd's user on Debian; root where etcd runs in Docker.
TLS_OWNERS = {"cloud-init": "etcd", "flatcar": "root", "coreos-legacy": "root"}
_HOST_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")  # an IPv4 address or a host name


def address_unit(
    env: jinja2.Environment,
    flavour: str,
    enrolling: bool,
    vias: Sequence[str],
    etcd_config: str,
    agent_config: str,
) -> str:
    """vulcano-node-address.service: the node's address filled in before etcd starts
    (also in the enrolment file, when the node gets its certificate at boot); found as
    the source of the route towards the first of ``vias`` that routes."""
    template = env.get_template(ADDRESS_UNIT_TEMPLATE)
    return template.render(
        script=ADDRESS_SCRIPT_PATHS[flavour],
        etcd_config=etcd_config,
        agent_config=agent_config,
        enrol=nodetls.ENROL_PATH if enrolling else "",
        vias=vias,
    )


def route_hints(spec: NodeSpec) -> list[str]:
    """Where a node's peers are, for node-address to find the address it reaches them
    from: the panel it enrols with, the members it is given, the discovery service
    (IPv4 addresses and host names; the default route comes after them)."""
    urls = [spec.tls.enrolment.url] if spec.tls is not None and spec.tls.enrolment else []
    urls += spec.etcd_endpoints.split(",") if spec.etcd_endpoints else []
    urls.append(spec.discovery_url)
    hosts = [urlsplit(url).hostname or "" for url in urls]
    return list(dict.fromkeys(h for h in hosts if _HOST_WORD.fullmatch(h)))


def enrolment_parts(
    env: jinja2.Environment, spec: NodeSpec, data_url: Callable[[str], object]
) -> dict[str, object] | None:
    """What a node getting its certificate at boot is given: the enrolment file, the
    script that asks for it and (Flatcar, CoreOS) its unit; None for any other node."""
    if spec.tls is None or spec.tls.enrolment is None:
        return None
    owner = TLS_OWNERS[spec.flavour]
    nodetls.check_owner(owner)
    address = NODE_IP_MARK if spec.auto_ip else spec.ip
    text = spec.tls.enrolment.env(spec.name, owner, address)
    script = (cloudconfig.TEMPLATES / nodetls.ENROL_SCRIPT).read_text()
    script_path = nodetls.ENROL_SCRIPT_PATHS[spec.flavour]
    unit = env.get_template(ENROL_UNIT_TEMPLATE)
    return {
        "path": nodetls.ENROL_PATH,
        "env": text,
        "env_url": data_url(text),
        "script_path": script_path,
        "script": script,
        "script_url": data_url(script),
        "unit": unit.render(script=script_path, enrol=nodetls.ENROL_PATH),
    }
