"""nftables rules for the overlay: masquerade what leaves the cluster network, accept
forwarding inside it. One table of our own, replaced atomically, so applying is idempotent
and removal never touches anybody else's rules.

nftables drops a packet when any base chain drops it, so a FORWARD policy of DROP in
another table (Docker's `ip filter FORWARD`, through iptables-nft) would still drop the
cluster's traffic despite our accept. So `apply` also inserts two accept rules, marked
with FORWARD_COMMENT, at the top of every other forward-hook base chain whose policy is
drop, where they win; `remove` takes them out again. The overlay checks them on its full
resyncs (`ForwardGuard`), so a Docker started after the agent is caught up with. A drop in
iptables-legacy is outside nftables' reach: `legacy_forward_drop` says so plainly.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shutil
import subprocess
import time
from typing import Any

from agent import policy
from vulcano.errors import VulcanoError

log = logging.getLogger(__name__)

TABLE = "vulcano"
FORWARD_COMMENT = "vulcano: accept the cluster network"


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
    """Our table, and our accepts in other tables' dropping forward chains (idempotent)."""
    result = _nft(ruleset(network))
    if result.returncode != 0:
        raise NftError(f"nft refused the overlay rules: {result.stderr.strip()}")
    ensure_forward_accepts(network)


def ensure_forward_accepts(network: ipaddress.IPv4Network) -> None:
    """Our accepts at the top of every other forward chain whose policy is drop."""
    for family, table, chain in _dropping_forward_chains():
        mine = _our_rules(family, table, chain)
        wanted = [f"ip saddr {network}", f"ip daddr {network}"]
        if sorted(m for m, _ in mine) == sorted(wanted):
            continue
        script = [f"delete rule {family} {table} {chain} handle {h}" for _, h in mine]
        accept = f'counter accept comment "{FORWARD_COMMENT}"'
        script += [f"insert rule {family} {table} {chain} {match} {accept}" for match in wanted]
        result = _nft("\n".join(script) + "\n")
        if result.returncode != 0:
            raise NftError(
                f"nft refused our accept rules in {family} {table} {chain} (its policy drops "
                f"forwarded traffic, so the cluster's would be dropped): {result.stderr.strip()}"
            )


class ForwardGuard:
    """Runs `ensure_forward_accepts` at most every FORWARD_CHECK_INTERVAL (it costs two
    processes), and warns once when iptables-legacy drops what nftables cannot reach."""

    def __init__(self) -> None:
        self._checked: float | None = None  # monotonic time of the last check
        self._legacy_warned = False

    def check(self, network: ipaddress.IPv4Network) -> None:
        now = time.monotonic()
        if self._checked is not None and now - self._checked < policy.FORWARD_CHECK_INTERVAL:
            return
        ensure_forward_accepts(network)
        if not self._legacy_warned and legacy_forward_drop():
            log.warning(
                "iptables-legacy's FORWARD policy is DROP (Docker on a legacy iptables host): "
                "traffic of the cluster network %s is dropped there, out of nftables' reach; "
                "run `iptables-legacy -I FORWARD -s %s -j ACCEPT` and the same with -d, "
                "or switch the host to iptables-nft",
                network,
                network,
            )
            self._legacy_warned = True
        self._checked = now


def remove() -> bool:
    """Delete our table and our accepts elsewhere; False when there was no table."""
    script = [
        f"delete rule {family} {table} {chain} handle {h}"
        for family, table, chain in _forward_chains()
        for _, h in _our_rules(family, table, chain)
    ]
    result = _nft("\n".join([*script, f"table ip {TABLE}", f"delete table ip {TABLE}"]) + "\n")
    if result.returncode != 0:
        raise NftError(f"nft could not remove table {TABLE}: {result.stderr.strip()}")
    return True


def _json(args: list[str]) -> list[dict[str, Any]]:
    result = _nft_args(["-j", *args])
    if result.returncode != 0:
        return []
    items: list[dict[str, Any]] = json.loads(result.stdout or "{}").get("nftables", [])
    return items


def _forward_chains(drop_only: bool = False) -> list[tuple[str, str, str]]:
    """(family, table, chain) of the ip/inet forward base chains not in our table."""
    out = []
    for item in _json(["list", "chains"]):
        c = item.get("chain")
        if not c or c.get("hook") != "forward" or c.get("family") not in ("ip", "inet"):
            continue
        if c.get("table") == TABLE and c.get("family") == "ip":
            continue
        if drop_only and c.get("policy") != "drop":
            continue
        out.append((str(c["family"]), str(c["table"]), str(c["name"])))
    return out


def _dropping_forward_chains() -> list[tuple[str, str, str]]:
    return _forward_chains(drop_only=True)


def _our_rules(family: str, table: str, chain: str) -> list[tuple[str, int]]:
    """Our accept rules in a chain: (their match, as `ip saddr|daddr NET`, handle)."""
    found = []
    for item in _json(["-a", "list", "chain", family, table, chain]):
        r = item.get("rule")
        if not r or r.get("comment") != FORWARD_COMMENT:
            continue
        match = ""
        for expr in r.get("expr", []):
            m = expr.get("match")
            if m and isinstance(m.get("right"), dict) and "prefix" in m["right"]:
                field = m["left"]["payload"]["field"]
                p = m["right"]["prefix"]
                match = f"ip {field} {p['addr']}/{p['len']}"
        found.append((match, int(r["handle"])))
    return found


def legacy_forward_drop() -> bool:
    """iptables-legacy's FORWARD policy is DROP (Docker on a legacy host): we cannot win."""
    if shutil.which("iptables-legacy") is None:
        return False
    result = subprocess.run(
        ["iptables-legacy", "-S", "FORWARD"],
        capture_output=True,
        text=True,
        timeout=policy.SUBPROCESS_TIMEOUT,
        check=False,
    )
    return result.returncode == 0 and "-P FORWARD DROP" in result.stdout


def _nft_args(args: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["nft", *args],
            capture_output=True,
            text=True,
            timeout=policy.SUBPROCESS_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise NftError("nft not found: install nftables") from None


def present() -> bool:
    result = subprocess.run(
        ["nft", "list", "table", "ip", TABLE],
        capture_output=True,
        text=True,
        timeout=policy.SUBPROCESS_TIMEOUT,
        check=False,
    )
    return result.returncode == 0
