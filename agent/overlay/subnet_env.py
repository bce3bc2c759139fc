"""subnet.env: the node's overlay settings in flannel's variable names.

Docker (or anything else) reads it to start with `--bip=$FLANNEL_SUBNET --mtu=$FLANNEL_MTU`.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from vulcano.network import NetworkConfig, bridge_address


def render(
    config: NetworkConfig, subnet: ipaddress.IPv4Network, mtu: int, ipmasq: bool = True
) -> str:
    return (
        f"FLANNEL_NETWORK={config.network}\n"
        f"FLANNEL_SUBNET={bridge_address(subnet)}/{subnet.prefixlen}\n"
        f"FLANNEL_MTU={mtu}\n"
        f"FLANNEL_IPMASQ={'true' if ipmasq else 'false'}\n"
    )


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def parse(text: str) -> dict[str, str]:
    result = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            result[k.strip()] = v.strip()
    return result
