"""The installer's own signing key: made once, kept in Datastore, shared by every instance.

Flask signs sessions and CSRF tokens with ``SECRET_KEY``. A deploy that configures none
(`VULCANO_SECRET_KEY`) gets one drawn here the first time any instance starts, stored as
one entity; every later start, on any instance, reads that entity. The draw and the
insert are one transaction that inserts only when the entity is absent, so instances
starting at the same moment agree on one key: the losers' commits fail and their retry
reads the winner's. A configured key wins over the stored one, which is then never made.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from google.cloud import ndb

from appengine import policy

SIGNING_KEY_KIND = "SigningKey"
# The one entity's key name.
_NAME = "flask-secret-key"
# 256 bits, as `secrets.token_urlsafe(32)`: 43 URL-safe characters.
KEY_BYTES = 32
_TXN_RPC = {"timeout": policy.DATASTORE_TIMEOUT}


class SigningKey(ndb.Model):  # type: ignore[misc]  # ndb is untyped
    """The signing key the installer made for itself (only when none is configured)."""

    value = ndb.TextProperty(required=True)
    created = ndb.DateTimeProperty(required=True, tzinfo=UTC, indexed=False)

    @classmethod
    def _get_kind(cls) -> str:
        return SIGNING_KEY_KIND


def _key() -> ndb.Key:
    return ndb.Key(SigningKey, _NAME)


def stored_or_new(client: ndb.Client) -> str:
    """The stored signing key, made and stored first when there is none yet."""
    drawn = secrets.token_urlsafe(KEY_BYTES)

    def get_or_insert() -> str:
        found: SigningKey | None = _key().get(**_TXN_RPC)
        if found is not None:
            value: str = found.value
            return value
        SigningKey(key=_key(), value=drawn, created=datetime.now(UTC)).put()
        return drawn

    with client.context():
        key: str = ndb.transaction(get_or_insert, retries=policy.SIGNING_KEY_TRANSACTION_RETRIES)
    return key
