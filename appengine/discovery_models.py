"""Discovery tokens and the members that registered under them, in Datastore.

A `DiscoveryToken` is one etcd v2 discovery directory. Its key name is the SHA-256 of the
secret token, so a token is only ever compared by a key lookup. Members are its children
(`DiscoveryMember`), so listing them is an ancestor query, strongly consistent. The
token carries the directory's etcd index: `_config/size` was created at index 1 and each
member registration takes the next index in the same transaction that creates the member.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from google.api_core import exceptions as core_exceptions
from google.cloud import ndb

from appengine import policy
from appengine.discovery_errors import (
    BadSize,
    InvalidField,
    InvalidForm,
    KeyNotFound,
    NodeExists,
    TokenFull,
)
from appengine.limits import LimitReached
from appengine.models import Install, derived_secret, provisioner_token, read_token

# `_config/size` is created with the directory, at index 1.
CONFIG_INDEX = 1
MIN_SIZE = 1
MAX_SIZE = 9
DEFAULT_SIZE = 3
# etcd writes "name=peerURL" per peer URL of the member; generous, but bounded.
MAX_VALUE_LENGTH = 2048
MAX_NAME_LENGTH = 255

_RPC = {"timeout": policy.DATASTORE_TIMEOUT, "retries": policy.DATASTORE_RETRIES}
# Inside a transaction the transaction itself is what is retried.
_TXN_RPC = {"timeout": policy.DATASTORE_TIMEOUT}

# 128 bits, 32 lowercase hex characters, as discovery.etcd.io's tokens.
TOKEN_BYTES = 16
_TOKEN = re.compile(r"[0-9a-f]{32}")
# etcd 3.4 names its discovery key after the member id, a uint64 in lowercase hex.
_MEMBER_ID = re.compile(r"[0-9a-f]{1,16}")


def parse_size(raw: str | None) -> int:
    """The cluster size from `?size=`: an integer from 1 to 9, 3 when absent."""
    if raw is None:
        return DEFAULT_SIZE
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3):
        raise BadSize(f"size must be an integer from {MIN_SIZE} to {MAX_SIZE}")
    size = int(raw)
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise BadSize(f"size must be an integer from {MIN_SIZE} to {MAX_SIZE}")
    return size


def is_member_id(name: str) -> bool:
    return _MEMBER_ID.fullmatch(name) is not None


def parse_peers(value: str) -> list[tuple[str, str]]:
    """Check a registration value, `name=peerURL[,name=peerURL...]`; return its pairs."""
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidForm(f"value is longer than {MAX_VALUE_LENGTH} characters")
    pairs = []
    for item in value.split(","):
        name, sep, url = item.partition("=")
        if not sep or not name or not url:
            raise InvalidForm("value must be name=peerURL[,name=peerURL...]")
        if not name.isprintable() or len(name) > MAX_NAME_LENGTH:
            raise InvalidForm(f"member name must be printable, at most {MAX_NAME_LENGTH} chars")
        pairs.append((name, _check_peer_url(url)))
    return pairs


def _check_peer_url(url: str) -> str:
    bad = InvalidForm("peer URL must be http(s)://host:port")
    if not url.isprintable() or " " in url:
        raise bad
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a port
    except ValueError:
        raise bad from None
    host_and_port = parts.netloc.rsplit("]", 1)[-1]  # past an IPv6 literal's colons
    if (
        parts.scheme not in {"http", "https"}
        or not parts.hostname
        or host_and_port.endswith(":")
        or parts.username is not None
        or parts.path not in {"", "/"}
        or parts.query
        or parts.fragment
    ):
        raise bad
    return url


def _now() -> datetime:
    return datetime.now(UTC)


def _derived_token(manage_token: str, nonce: str) -> str:
    return derived_secret(manage_token, f"discovery token {nonce}", TOKEN_BYTES).hex()


# A nonce starting so marks a token its install's provisioning container asked for: it
# is derived from the provisioner token, which the manage token derives again.
_PROVISIONER_NONCE = "p:"


def token_key(token: str) -> ndb.Key:
    """The Datastore key of a discovery token: its hex SHA-256, never the token itself."""
    return ndb.Key(DiscoveryToken, hashlib.sha256(token.encode("ascii")).hexdigest())


class DiscoveryToken(ndb.Model):  # type: ignore[misc]  # ndb is untyped
    """One etcd discovery directory: its size, its index counter, the install it serves.

    Stored under the SHA-256 of the token (128 random bits: the hash cannot be walked
    back), so a leaked backup holds no usable discovery URL. A token made for an install
    is derived from the install's manage token and the entity's `nonce`: the install page
    can show the URL again, and nothing stored (nonce included) rebuilds it.
    """

    size = ndb.IntegerProperty(required=True, indexed=False)
    index = ndb.IntegerProperty(required=True, indexed=False, default=CONFIG_INDEX)
    created = ndb.DateTimeProperty(required=True, tzinfo=UTC)
    install = ndb.KeyProperty()
    nonce = ndb.TextProperty()

    @classmethod
    def create(
        cls,
        size: int,
        install: ndb.Key | None = None,
        manage_token: str | None = None,
        max_per_install: int | None = None,
        provisioner_token: str | None = None,
    ) -> tuple[DiscoveryToken, str]:
        """A new token with 128 random (or derived) bits; returns the entity and the token.

        With ``install`` the token is derived from ``manage_token`` or, for the install's
        provisioning container, from ``provisioner_token`` (one must be given), and
        counted on the install in the same transaction: past ``max_per_install`` it
        raises LimitReached (409) and stores nothing.
        """
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise BadSize(f"size must be an integer from {MIN_SIZE} to {MAX_SIZE}")
        nonce = None
        if install is None:
            token = secrets.token_hex(TOKEN_BYTES)
        elif provisioner_token is not None:
            nonce = _PROVISIONER_NONCE + secrets.token_hex(TOKEN_BYTES)
            token = _derived_token(provisioner_token, nonce)
        else:
            assert manage_token is not None, "an install's token is derived from its manage token"
            nonce = secrets.token_hex(TOKEN_BYTES)
            token = _derived_token(manage_token, nonce)
        entity = cls(
            key=token_key(token),
            size=size,
            index=CONFIG_INDEX,
            created=_now(),
            install=install,
            nonce=nonce,
        )
        if install is None:
            entity.put(**_RPC)
            return entity, token

        def insert() -> None:
            owner: Install | None = install.get(**_TXN_RPC)
            if owner is None or owner.expired:
                raise KeyNotFound("install")
            made = int(owner.discovery_tokens or 0)
            if max_per_install is not None and made >= max_per_install:
                raise LimitReached(
                    f"discovery: an install has at most {max_per_install} discovery URLs; "
                    "this one has them all",
                    status=409,
                )
            owner.discovery_tokens = made + 1
            ndb.put_multi([owner, entity])

        ndb.transaction(insert, retries=policy.TRANSACTION_RETRIES)
        return entity, token

    @classmethod
    def lookup(cls, token: str) -> DiscoveryToken | None:
        """The token's entity, read past every cache; None for unknown or malformed tokens.

        A token of a deleted install is unknown from the moment the install is gone.
        """
        if _TOKEN.fullmatch(token) is None:
            return None
        entity: DiscoveryToken | None = token_key(token).get(use_cache=False, **_RPC)
        install = entity.install if entity is not None else None
        if install is not None:
            owner: Install | None = install.get(use_cache=False, **_RPC)
            if owner is None or owner.expired:
                return None
        return entity

    @classmethod
    def for_install(cls, install: ndb.Key) -> list[DiscoveryToken]:
        """The install's tokens, newest first."""
        tokens: list[DiscoveryToken] = cls.query(cls.install == install).fetch(**_RPC)
        tokens.sort(key=lambda t: t.created, reverse=True)
        return tokens

    def token_for(self, manage_token: str) -> str:
        """This install token's discovery token, derived again from the manage token."""
        assert self.nonce is not None, "only an install's tokens can be derived again"
        if self.nonce.startswith(_PROVISIONER_NONCE):
            return _derived_token(provisioner_token(read_token(manage_token)), self.nonce)
        return _derived_token(manage_token, self.nonce)

    @property
    def members_registered(self) -> int:
        return int(self.index) - CONFIG_INDEX

    def members(self) -> list[DiscoveryMember]:
        """The members registered as of this entity's index, in createdIndex order.

        The query runs after the token was read, so it may already see members that
        registered since; they are left for the next read. A listing that showed them
        with the older index would hand etcd's watch (from index + 1) the same member
        twice, and etcd exits on a duplicate.
        """
        found: list[DiscoveryMember] = DiscoveryMember.query(ancestor=self.key).fetch(
            use_cache=False, **_RPC
        )
        snapshot = [m for m in found if m.created_index <= self.index]
        snapshot.sort(key=lambda m: m.created_index)
        return snapshot


class DiscoveryMember(ndb.Model):  # type: ignore[misc]  # ndb is untyped
    """One etcd member's registration: key name is its member id, value its peer URLs."""

    value = ndb.TextProperty(required=True)
    created_index = ndb.IntegerProperty(required=True, indexed=False)
    created = ndb.DateTimeProperty(required=True, tzinfo=UTC, indexed=False)

    @property
    def member_id(self) -> str:
        member_id: str = self.key.id()
        return member_id

    def peers(self) -> list[tuple[str, str]]:
        """The (name, peer URL) pairs the member registered."""
        pairs = []
        for item in self.value.split(","):
            name, _, url = item.partition("=")
            pairs.append((name, url))
        return pairs


# Errors after which a registration transaction is tried again. Aborted is a lost race:
# nothing was committed. The others leave the commit's outcome unknown.
_RETRIED = (
    core_exceptions.Aborted,
    core_exceptions.DeadlineExceeded,
    core_exceptions.InternalServerError,
    core_exceptions.ServiceUnavailable,
    core_exceptions.Unknown,
)


def max_registrations(size: int, extra_per_size: int) -> int:
    """The most registrations a token of ``size`` takes."""
    return size * (1 + extra_per_size)


def register(
    token: str, member_id: str, value: str, extra_per_size: int | None = None
) -> DiscoveryMember:
    """Create the member under the token with the token's next index, in one transaction.

    Past ``max_registrations(size, extra_per_size)`` registrations it raises TokenFull.

    A transaction that loses a race with another registration is tried again, quickly
    (ndb's own retries wait a second or more). Raises KeyNotFound for an unknown token
    and NodeExists (carrying the token's current index) when the member is already there.
    """
    if not is_member_id(member_id):
        raise InvalidField("key must be a member id: 1 to 16 lowercase hex digits")
    if _TOKEN.fullmatch(token) is None:
        raise KeyNotFound("token")
    directory_key = token_key(token)
    member_key = ndb.Key(DiscoveryMember, member_id, parent=directory_key)

    def create() -> tuple[DiscoveryMember, bool, int]:
        directory, existing = ndb.get_multi(
            [directory_key, member_key], use_cache=False, **_TXN_RPC
        )
        if directory is None:
            raise KeyNotFound("token")
        # Read in the transaction: a delete of the install that commits first wins.
        if directory.install is not None:
            owner: Install | None = directory.install.get(**_TXN_RPC)
            if owner is None or owner.expired:
                raise KeyNotFound("token")
        if existing is not None:
            return existing, False, directory.index
        if extra_per_size is not None:
            most = max_registrations(directory.size, extra_per_size)
            if directory.members_registered >= most:
                raise TokenFull(
                    f"registrations: a token of size {directory.size} takes at most {most}",
                    index=directory.index,
                )
        directory.index += 1
        member = DiscoveryMember(
            key=member_key, value=value, created_index=directory.index, created=_now()
        )
        ndb.put_multi([directory, member])  # committed with the transaction
        return member, True, directory.index

    deadline = time.monotonic() + policy.DISCOVERY_REGISTER_DEADLINE
    outcome_unknown = False
    failure: Exception | None = None
    for _ in policy.DISCOVERY_REGISTER_BACKOFF.sleep_until(deadline):
        try:
            attempt: tuple[DiscoveryMember, bool, int] = ndb.transaction(create, retries=0)
        except _RETRIED as exc:
            outcome_unknown = outcome_unknown or not isinstance(exc, core_exceptions.Aborted)
            failure = exc
            continue
        member, created, index = attempt
        if created or (outcome_unknown and member.value == value):
            # The second case: our own earlier attempt did commit; etcd must not see a 412.
            return member
        raise NodeExists("member", index=index)
    assert failure is not None
    raise failure


def _delete_tokens(keys: list[ndb.Key]) -> None:
    for directory_key in keys:
        children: list[ndb.Key] = DiscoveryMember.query(ancestor=directory_key).fetch(
            keys_only=True, **_RPC
        )
        ndb.delete_multi([*children, directory_key], **_RPC)


def delete_for_install(install: ndb.Key) -> int:
    """Delete every token of ``install`` with its members; how many tokens there were."""
    keys: list[ndb.Key] = DiscoveryToken.query(DiscoveryToken.install == install).fetch(
        keys_only=True, **_RPC
    )
    _delete_tokens(keys)
    return len(keys)


def delete_older_than(max_age: timedelta, batch: int = policy.DISCOVERY_CLEANUP_BATCH) -> int:
    """Delete at most `batch` tokens created before now - max_age, with their members."""
    cutoff = _now() - max_age
    old: list[DiscoveryToken] = DiscoveryToken.query(DiscoveryToken.created < cutoff).fetch(
        batch, **_RPC
    )
    _delete_tokens([token.key for token in old if token.install is None])
    for token in old:
        if token.install is not None:
            _delete_install_token(token.key, token.install)
    return len(old)


def _delete_install_token(directory_key: ndb.Key, install: ndb.Key) -> None:
    """Delete one token of an install and give the install its place back, together."""

    def remove() -> None:
        owner: Install | None = install.get(**_TXN_RPC)
        if owner is not None:
            owner.discovery_tokens = max(0, int(owner.discovery_tokens or 0) - 1)
            owner.put()
        directory_key.delete()

    ndb.transaction(remove, retries=policy.TRANSACTION_RETRIES)
    _delete_tokens([directory_key])  # its members; the token itself is already gone
