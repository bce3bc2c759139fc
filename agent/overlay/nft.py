"""nftables rules for the overlay: masquerade what leaves the cluster network, accept
forwarding inside it. One table of our own, replaced atomically, so applying is idempotent
and removal never touches anybody else's rules.

Note: nftables drops a packet when any base chain drops it, so a FORWARD policy of DROP
in another table (Docker's) still wins over our accept; hosts running Docker need its
`--iptables` rules or an explicit accept there.
"""

from __future__ import annotations

import ipaddress
import subprocess

from agent import policy
from vulcano.errors import VulcanoError

TABLE = "vulcano"


class NftError(VulcanoError):
    """nft refused our rules or is missing."""


def ruleset(network: ipaddress.IPv4Network) -> str:
    """The whole table, as one nft script that replaces any previous copy."""
    return f"""\
table ip {TABLE}
delete table ip {TABLE}
table ip {TABLE} {{
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr {network} ip daddr {network} return
        ip saddr {network} ip daddr != 224.0.0.0/4 counter masquerade
        ip saddr != {network} ip daddr {network} counter masquerade
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        ip saddr {network} counter accept
        ip daddr {network} counter accept
    }}
}}
"""


def _nft(script: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["nft", "-f", "-"],
            input=script,
            capture_output=True,
            text=True,
            timeout=policy.SUBPROCESS_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise NftError("nft not found: install nftables") from None


def apply(network: ipaddress.IPv4Network) -> None:
    result = _nft(ruleset(network))
    if result.returncode != 0:
        raise NftError(f"nft refused the overlay rules: {result.stderr.strip()}")


def remove() -> bool:
    """Delete our table; False when there was none."""
    result = _nft(f"table ip {TABLE}\ndelete table ip {TABLE}\n")
    if result.returncode != 0:
        raise NftError(f"nft could not remove table {TABLE}: {result.stderr.strip()}")
    return True


def present() -> bool:
    result = subprocess.run(
        ["nft", "list", "table", "ip", TABLE],
        capture_output=True,
        text=True,
        timeout=policy.SUBPROCESS_TIMEOUT,
        check=False,
    )
    return result.returncode == 0
