"""The installer's memory: one Datastore entity per install, found again by its tokens.

An install has two tokens. The *manage token* (random, shown to the user once and on the
install page) opens the page, deletes the install and makes discovery URLs. The *read
token* goes into the permalink, which machines fetch and keep in their user-data: it
serves the document and nothing else. (The provisioning container's own credentials,
the provisioner token and the reporting secret, are described where they are made.)
The read token is an HMAC of the manage token, so whoever holds the manage token can
show the permalink again, and a read token says nothing about the manage token that
made it.

Datastore never holds a raw token: an install's key name is the SHA-256 of its read
token, so reading the database (or its backups) hands out neither. Finding an install by
either token is a key lookup on that hash, which needs no comparison of secrets at all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from google.cloud import ndb

from appengine import policy
from vulcano.errors import VulcanoError

# 32 bytes of `secrets` randomness (256 bits), URL-safe base64 without padding: 43 chars.
TOKEN_BYTES = 32
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")
# A random 256-bit token colliding is not going to happen; bounded anyway, never a loop.
_CREATE_ATTEMPTS = 3
_RPC = {"timeout": policy.DATASTORE_TIMEOUT, "retries": policy.DATASTORE_RETRIES}
# Inside a transaction the transaction itself is what is retried.
_TXN_RPC = {"timeout": policy.DATASTORE_TIMEOUT}


class TokenCollision(VulcanoError, RuntimeError):
    """Every freshly drawn token was already taken (only a broken RNG does this)."""


def new_token() -> str:
    """A fresh install token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_well_formed(token: str) -> bool:
    """True when ``token`` has the shape :func:`new_token` produces."""
    return _TOKEN_RE.fullmatch(token) is not None


def token_key_name(token: str) -> str:
    """The Datastore key name for ``token``: hex SHA-256, so the raw token is never stored."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


_READ_TOKEN_INFO = b"vulcano install read token v1"


def read_token(manage_token: str) -> str:
    """The permalink's token for the install ``manage_token`` manages (same shape)."""
    digest = hmac.new(manage_token.encode("ascii"), _READ_TOKEN_INFO, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


_PROVISIONER_TOKEN_INFO = b"vulcano install provisioner token v1"


def provisioner_token(read_token: str) -> str:
    """The install's provisioner token: the provisioning machine's proof of its install.

    Derived from the read token (whoever holds the permalink can read the document that
    carries it anyway), it lets the provisioning container make discovery URLs tied to the
    install (`GET /new` with ``Authorization: Bearer``) and nothing else.
    """
    key = read_token.encode("ascii")
    digest = hmac.new(key, _PROVISIONER_TOKEN_INFO, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def derived_secret(manage_token: str, purpose: str, nbytes: int) -> bytes:
    """``nbytes`` secret bytes for ``purpose``, derived from the manage token alone."""
    message = f"vulcano install {purpose}".encode()
    return hmac.new(manage_token.encode("ascii"), message, hashlib.sha256).digest()[:nbytes]


class Install(ndb.Model):  # type: ignore[misc]
    """One install a user made on the page: their answers and the document generated."""

    cluster_name = ndb.StringProperty(required=True)
    # Keys can be longer than an indexed string may be (1500 bytes): keep them unindexed.
    ssh_keys = ndb.TextProperty(repeated=True)
    flavour = ndb.StringProperty(required=True)
    image = ndb.TextProperty(required=True)
    size = ndb.IntegerProperty(required=True, indexed=False)
    document = ndb.TextProperty(required=True)
    content_type = ndb.TextProperty(required=True)
    created = ndb.DateTimeProperty(auto_now_add=True)
    # After this the install is gone for every purpose; the cron deletes it.
    expires = ndb.DateTimeProperty(tzinfo=UTC)
    # How many discovery tokens were made for it, counted in their creating transaction.
    discovery_tokens = ndb.IntegerProperty(default=0, indexed=False)
    # SHA-256 of its provisioner token, to find the install by it (never the token).
    provisioner_key = ndb.StringProperty()
    # SHA-256 of the secret part of its reporting secret (appengine.reporting); None for
    # installs made before heartbeats, which cannot report.
    report_hash = ndb.TextProperty()
    # The provisioning container's admin panel as its heartbeats last described it
    # (appengine.panel_report): its URL and its TLS certificate's SHA-256 fingerprint.
    panel_url = ndb.TextProperty()
    panel_fingerprint = ndb.TextProperty()

    @property
    def expired(self) -> bool:
        return self.expires is not None and self.expires <= datetime.now(UTC)

    @classmethod
    def create(
        cls, max_age: timedelta | None = None, token: str | None = None, **fields: Any
    ) -> tuple[Install, str]:
        """Store a new install under a fresh token; return it and its manage token.

        With ``max_age`` the install expires that long from now. With ``token`` (drawn by
        :func:`new_token` first, because the document carries a secret derived from it)
        the install is stored under that one, or TokenCollision.

        The insert is a transaction that refuses to overwrite an existing install, so two
        creates can never end up sharing one entity.
        """
        given = token
        for _ in range(1 if given else _CREATE_ATTEMPTS):
            token = given or new_token()
            key = cls.key_for_read_token(read_token(token))
            fields["provisioner_key"] = token_key_name(provisioner_token(read_token(token)))

            def insert(key: ndb.Key = key) -> Install | None:
                if key.get(**_TXN_RPC) is not None:
                    return None
                expires = datetime.now(UTC) + max_age if max_age is not None else None
                install = cls(key=key, expires=expires, **fields)
                install.put()  # inside a transaction ndb takes no per-call options
                return install

            stored: Install | None = ndb.transaction(insert, retries=policy.TRANSACTION_RETRIES)
            if stored is not None:
                return stored, token
        raise TokenCollision("could not draw an unused install token")

    @classmethod
    def key_for_read_token(cls, token: str) -> ndb.Key:
        return ndb.Key(cls, token_key_name(token))

    @classmethod
    def get_by_read_token(cls, token: str) -> Install | None:
        """The install a permalink's token serves; None when unknown or malformed."""
        if not isinstance(token, str) or not is_well_formed(token):
            return None
        install: Install | None = cls.key_for_read_token(token).get(**_RPC)
        return install

    @classmethod
    def get_by_token(cls, token: str) -> Install | None:
        """The install a manage token manages; None when unknown or malformed.

        A read token given here names no install: its own HMAC is some other read token.
        """
        if not isinstance(token, str) or not is_well_formed(token):
            return None
        return cls.get_by_read_token(read_token(token))

    @classmethod
    def get_by_provisioner_token(cls, token: str) -> Install | None:
        """The install whose provisioning machine holds ``token``; None when unknown."""
        if not isinstance(token, str) or not is_well_formed(token):
            return None
        query = cls.query(cls.provisioner_key == token_key_name(token))
        install: Install | None = query.get(**_RPC)
        return install

    @classmethod
    def delete_by_token(cls, token: str) -> bool:
        """Delete the install a manage token manages; True when there was one."""
        if not isinstance(token, str) or not is_well_formed(token):
            return False
        key = cls.key_for_read_token(read_token(token))

        def remove() -> bool:
            if key.get(**_TXN_RPC) is None:
                return False
            key.delete()
            return True

        removed: bool = ndb.transaction(remove, retries=policy.TRANSACTION_RETRIES)
        return removed

    @classmethod
    def expired_keys(cls, batch: int) -> list[ndb.Key]:
        """At most ``batch`` keys of installs past their expiry."""
        keys: list[ndb.Key] = cls.query(cls.expires < datetime.now(UTC)).fetch(
            batch, keys_only=True, **_RPC
        )
        return keys
