"""Install entities: stored under a hash of a random token, found by token, deleted."""

from __future__ import annotations

import hashlib

from google.cloud import ndb

from appengine.models import Install, is_well_formed, read_token
from tests.appengine.conftest import INSTALL_FIELDS as FIELDS


def test_create_then_get_by_token_returns_the_install(ndb_context: ndb.Context) -> None:
    install, token = Install.create(**FIELDS)
    assert is_well_formed(token)
    found = Install.get_by_token(token)
    assert found is not None
    assert found.key == install.key
    assert found.cluster_name == "prod"
    assert found.created is not None


def test_datastore_key_is_the_hash_never_the_token(ndb_context: ndb.Context) -> None:
    install, token = Install.create(**FIELDS)
    permalink_token = read_token(token)
    assert install.key.id() == hashlib.sha256(permalink_token.encode()).hexdigest()
    stored = Install.query().fetch()
    assert [i.key for i in stored] == [install.key]
    assert token not in repr(stored[0].to_dict())
    assert permalink_token not in repr(stored[0].to_dict())


def test_the_read_token_finds_the_document_but_manages_nothing(ndb_context: ndb.Context) -> None:
    install, token = Install.create(**FIELDS)
    permalink_token = read_token(token)
    assert is_well_formed(permalink_token) and permalink_token != token
    found = Install.get_by_read_token(permalink_token)
    assert found is not None and found.key == install.key
    assert Install.get_by_token(permalink_token) is None
    assert Install.delete_by_token(permalink_token) is False
    assert Install.get_by_read_token(token) is None  # nor is the manage token a permalink
    assert Install.get_by_token(token) is not None


def test_tokens_are_distinct_and_long(ndb_context: ndb.Context) -> None:
    tokens = {Install.create(**FIELDS)[1] for _ in range(5)}
    assert len(tokens) == 5
    # token_urlsafe(32): 43 chars of 6 bits each, at least 128 bits.
    assert all(len(t) * 6 >= 128 for t in tokens)


def test_unknown_or_malformed_token_is_none(ndb_context: ndb.Context) -> None:
    Install.create(**FIELDS)
    assert Install.get_by_token("A" * 43) is None
    for bad in ["", "short", "x" * 44, "../../etc/passwd", "A" * 42 + "!", "\n" * 43]:
        assert Install.get_by_token(bad) is None


def test_delete_by_token_removes_it(ndb_context: ndb.Context) -> None:
    _, token = Install.create(**FIELDS)
    assert Install.delete_by_token(token) is True
    assert Install.get_by_token(token) is None
    assert Install.delete_by_token(token) is False
