"""A cluster's join token: what guards the URL a node ``#include``s its user-data from.

One token per cluster at a time, made with `secrets`, shown once, kept only as its
SHA-256 with an expiry; a new one replaces the old, `revoke()` ends it. A token is
checked in constant time and refused when wrong, revoked or expired.

cloud-init writes the URL it includes, token and all, to the node's own log, so a token
serves each node's user-data once, to one address (`claim_node`): a retry from that
address is served again, a replay from anywhere else is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import quote

from container import policy
from container.services.clusters import ClusterRecord, get_cluster
from container.services.errors import ClusterInputError, ClusterNotFound, JoinTokenError
from container.store import Store

# The panel's URL as nodes reach it, for their #include (else the URL a browser used).
PANEL_URL_VAR = "VULCANO_PANEL_URL"
TOKEN_BYTES = 32
# A join token lasts at least a minute and at most 30 days.
TTL_RANGE = (60, 30 * 24 * 3600)


def join_path(cluster: str, node: int | str, token: str) -> str:
    """The panel's path serving the node's user-data (container.panel.join)."""
    return f"/join/{quote(cluster, safe='')}/{node}?token={quote(token, safe='')}"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="replace")).hexdigest()


def issue(store: Store, name: str, ttl: int = policy.JOIN_TOKEN_TTL) -> tuple[str, float]:
    """A new join token for the cluster (the old one stops working); it and its expiry."""
    low, high = TTL_RANGE
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not low <= ttl <= high:
        raise ClusterInputError("--ttl", f"must be {low} to {high} seconds")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    expires = time.time() + ttl
    _set(store, name, _digest(token), expires)
    return token, expires


def revoke(store: Store, name: str) -> None:
    """End the cluster's join token: its URL serves nothing from now on."""
    _set(store, name, "", 0.0)


def _set(store: Store, name: str, digest: str, expires: float) -> None:
    with store.transaction() as conn:
        conn.execute("DELETE FROM join_fetches WHERE cluster = ?", (name,))
        changed = conn.execute(
            "UPDATE clusters SET join_token_hash = ?, join_token_expires = ? WHERE name = ?",
            (digest, expires, name),
        ).rowcount
    if not changed:
        raise ClusterNotFound(f"no cluster named {name!r} (vulcano cluster list shows them)")


def check(store: Store, name: str, token: str) -> ClusterRecord:
    """The cluster, when ``token`` is its live join token; JoinTokenError otherwise."""
    try:
        record = get_cluster(store, name)
    except ClusterNotFound:
        raise JoinTokenError("no such cluster, or a wrong token") from None
    with store.read() as conn:
        row = conn.execute(
            "SELECT join_token_hash, join_token_expires FROM clusters WHERE name = ?", (name,)
        ).fetchone()
    stored = str(row["join_token_hash"]) if row is not None else ""
    if not stored or not hmac.compare_digest(stored, _digest(token)):
        raise JoinTokenError("no such cluster, or a wrong token")
    if float(row["join_token_expires"]) <= time.time():
        raise JoinTokenError(
            f"this join token expired; make a new one with vulcano cluster join-token {name}"
        )
    return record


def claim_node(store: Store, name: str, token: str, node: int, address: str) -> None:
    """Let ``address`` have node ``node``'s user-data under ``token`` (checked already):
    the first address to ask keeps it; JoinTokenError for any other."""
    digest = _digest(token)
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO join_fetches (cluster, token_hash, node, address, at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (cluster, token_hash, node) DO NOTHING",
            (name, digest, node, address, time.time()),
        )
        row = conn.execute(
            "SELECT address FROM join_fetches WHERE cluster = ? AND token_hash = ? AND node = ?",
            (name, digest, node),
        ).fetchone()
    if row is None or row["address"] != address:
        raise JoinTokenError(
            f"node {node}'s user-data was served with this token already, to another address; "
            f"make a new join token (vulcano cluster join-token {name})"
        )
