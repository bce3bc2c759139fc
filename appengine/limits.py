"""The installer's abuse bounds, named, and the per-client quota that enforces the rates.

Every bound answers a 4xx (429 for rates) whose message names the limit, and stores
nothing. App config keys of the same name override the defaults; on App Engine each can
also be set as `VULCANO_<NAME>` in the environment.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app, request
from google.api_core import exceptions as core_exceptions
from google.cloud import ndb

from appengine import policy
from vulcano.errors import VulcanoError

# Anonymous `GET /new` (etcd's documented `curl https://…/new?size=3`): per client address.
NEW_TOKENS_PER_CLIENT_PER_HOUR = 20
# Installs made from the form, per client address.
INSTALLS_PER_CLIENT_PER_HOUR = 30
# Test alerts one install may send (from its page or the container), per hour.
TEST_ALERTS_PER_INSTALL_PER_HOUR = 10
# Discovery URLs one install may have (its page lists them all).
DISCOVERY_TOKENS_PER_INSTALL = 10
# Registrations a token takes: its size, and as many again for members that raced past
# the "cluster full" check (the panel shows those). etcd checks before it registers.
DISCOVERY_EXTRA_REGISTRATIONS_PER_SIZE = 1
# Installs are forgotten (page, permalink, discovery URLs) this long after they were made.
INSTALL_MAX_AGE_DAYS = 90
# Discovery long-polls waiting at once in one process (gunicorn worker): fewer than its
# threads (app.yaml: 8), so pages are always served. Per token: its size (one watch per
# member). Per client address: members of one cluster often share a NAT address.
DISCOVERY_WATCHES_PER_PROCESS = 4
DISCOVERY_WATCHES_PER_CLIENT = 3
# A watch refused for a bound is a 503: etcd retries a 5xx GET with backoff (1-8 s).
DISCOVERY_WATCH_RETRY_AFTER = 5
# Heartbeats one install may store per minute: one Datastore write each on one entity,
# whose sustained rate should stay near one a second (appengine.heartbeat_models).
HEARTBEATS_PER_INSTALL_PER_MINUTE = 60

LIMITS = (
    "NEW_TOKENS_PER_CLIENT_PER_HOUR",
    "INSTALLS_PER_CLIENT_PER_HOUR",
    "TEST_ALERTS_PER_INSTALL_PER_HOUR",
    "DISCOVERY_TOKENS_PER_INSTALL",
    "DISCOVERY_EXTRA_REGISTRATIONS_PER_SIZE",
    "INSTALL_MAX_AGE_DAYS",
    "DISCOVERY_WATCHES_PER_PROCESS",
    "DISCOVERY_WATCHES_PER_CLIENT",
    "HEARTBEATS_PER_INSTALL_PER_MINUTE",
)
_WINDOW = timedelta(hours=1)
_TXN_RPC = {"timeout": policy.DATASTORE_TIMEOUT}


class LimitReached(VulcanoError):
    """A bound was hit; ``message`` names it, ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int = 429, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


def from_environment() -> dict[str, int]:
    """The limits set as `VULCANO_<NAME>` in the environment."""
    found = {}
    for name in LIMITS:
        raw = os.environ.get(f"VULCANO_{name}")
        if raw is not None:
            found[name] = int(raw)
    return found


def limit(name: str) -> int:
    """The limit in force: the app config's, else this module's default."""
    assert name in LIMITS, name
    value: Any = current_app.config.get(name, globals()[name])
    return int(value)


def client_address() -> str:
    """Who is asking, for per-client bounds: one IPv4 address or one IPv6 /64.

    App Engine's front end sets X-Appengine-User-IP and strips any a client sent;
    elsewhere (tests, gunicorn on loopback) the socket's peer is the client.
    """
    on_app_engine = os.environ.get("GAE_ENV", "").startswith("standard")
    raw = (request.headers.get("X-Appengine-User-IP") if on_app_engine else None) or (
        request.remote_addr or "unknown"
    )
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class ClientQuota(ndb.Model):  # type: ignore[misc]  # ndb is untyped
    """How often one client did one thing in one hour; key name hashes all three."""

    count = ndb.IntegerProperty(required=True, indexed=False)
    expires = ndb.DateTimeProperty(required=True, tzinfo=UTC)


@dataclass(frozen=True)
class Rate:
    """A per-client hourly rate: ``what`` names it in the 429's message."""

    name: str
    what: str

    def take(self, client: str | None = None) -> None:
        """Count one use for the client, or raise LimitReached (counting nothing)."""
        allowed = limit(self.name)
        client = client or client_address()
        now = datetime.now(UTC)
        window = now.replace(minute=0, second=0, microsecond=0)
        # Hashed: Datastore never holds a client's address.
        name = hashlib.sha256(f"{self.name}|{client}|{window.isoformat()}".encode()).hexdigest()
        key = ndb.Key(ClientQuota, name)

        def count() -> bool:
            quota = key.get(**_TXN_RPC)
            used = quota.count if quota is not None else 0
            if used >= allowed:
                return False
            ClientQuota(key=key, count=used + 1, expires=window + _WINDOW).put()
            return True

        if not _counted(count, self.what):
            retry = int((window + _WINDOW - now).total_seconds()) + 1
            raise LimitReached(
                f"{self.what}: at most {allowed} per hour from one address; try again later",
                retry_after=retry,
            )


def _counted(count: Any, what: str) -> bool:
    """Run the counting transaction; when it keeps losing to the same client's other
    requests (one entity), a 503 that says so, counting nothing.

    ndb's own retries wait a second and more each and end in an error page; these are
    quick, and bounded (policy.QUOTA_TXN_DEADLINE).
    """
    deadline = time.monotonic() + policy.QUOTA_TXN_DEADLINE
    for _ in policy.QUOTA_TXN_BACKOFF.sleep_until(deadline):
        try:
            counted: bool = ndb.transaction(count, retries=0)
        except core_exceptions.Aborted:  # a lost race: nothing was committed
            continue
        return counted
    raise LimitReached(
        f"{what}: too many requests from one address at once; try again shortly",
        status=503,
        retry_after=policy.QUOTA_BUSY_RETRY_AFTER,
    )


NEW_TOKENS = Rate("NEW_TOKENS_PER_CLIENT_PER_HOUR", "new discovery tokens")
INSTALLS = Rate("INSTALLS_PER_CLIENT_PER_HOUR", "installs")
# Counted per install (its key), not per client address.
TEST_ALERTS = Rate("TEST_ALERTS_PER_INSTALL_PER_HOUR", "test alerts")


def delete_expired_quotas(batch: int = policy.DISCOVERY_CLEANUP_BATCH) -> int:
    """Delete at most ``batch`` quota counters whose hour is over."""
    keys: list[ndb.Key] = ClientQuota.query(ClientQuota.expires < datetime.now(UTC)).fetch(
        batch, keys_only=True, timeout=policy.DATASTORE_TIMEOUT
    )
    ndb.delete_multi(keys, timeout=policy.DATASTORE_TIMEOUT)
    return len(keys)
