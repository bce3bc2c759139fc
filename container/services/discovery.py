"""Where a cluster's etcd answers, learned from its discovery directory.

The members that came up registered ``name=peerURL`` under the cluster's discovery URL
(the installer keeps the directory; its token in the URL is the credential). The first
`etcd_size` registrations by index are the members (later ones found the cluster full
and run as proxies); each member's client URL is its peer URL's host on the client port
every node's etcd listens on (`vulcano.nodeconfig.NodeSpec.client_port`).
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import requests

from container import policy
from container.services.clusters import ClusterRecord
from container.services.errors import InstallerError
from vulcano import nodeconfig

CLIENT_PORT = nodeconfig.NodeSpec.client_port
# A directory listing longer than this is not one of ours (at most 9 members and slack).
MAX_LISTING_BYTES = 256 * 1024


def member_client_urls(record: ClusterRecord) -> list[str]:
    """The client URLs of the members registered so far (none: nobody came up yet)."""
    try:
        answer = requests.get(record.discovery_url, timeout=policy.INSTALLER_TIMEOUT)
    except requests.RequestException as exc:
        raise InstallerError(
            f"discovery {_where(record)} unreachable ({type(exc).__name__})"
        ) from None
    if answer.status_code != 200 or len(answer.content) > MAX_LISTING_BYTES:
        raise InstallerError(f"discovery {_where(record)} answered {answer.status_code}")
    try:
        children: list[Any] = answer.json()["node"].get("nodes") or []
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InstallerError(f"discovery {_where(record)} answered no directory") from None
    members = sorted(
        (c for c in children if isinstance(c, dict) and not _is_config(c)),
        key=lambda c: int(c.get("createdIndex", 0)),
    )[: record.etcd_size or None]
    urls: list[str] = []
    for member in members:
        for url in _client_urls(str(member.get("value", ""))):
            if url not in urls:
                urls.append(url)
    return urls


def _where(record: ClusterRecord) -> str:
    # The host only: the token in the path is a credential.
    return urlsplit(record.discovery_url).netloc


def _is_config(child: dict[str, Any]) -> bool:
    return str(child.get("key", "")).rstrip("/").endswith("/_config")


def _client_urls(value: str) -> list[str]:
    found = []
    for pair in value.split(","):
        _, _, peer = pair.partition("=")
        parts = urlsplit(peer)
        host = parts.hostname
        if not host:
            continue
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            continue  # our nodes advertise addresses; a name is not one of ours
        shown = f"[{address}]" if address.version == 6 else str(address)
        # a TLS cluster's members advertise https:// peer URLs, and serve clients so too
        scheme = "https" if parts.scheme == "https" else "http"
        found.append(f"{scheme}://{shown}:{CLIENT_PORT}")
    return found
