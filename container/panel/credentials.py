"""The panel's secrets in the store: the admin password's hash and the session key.

The admin password comes from ``VULCANO_ADMIN_PASSWORD`` when it is set (and then
replaces the stored hash), else the one stored; on the very first start without one a
password is generated and printed once to stderr (the container's log) — the only time
any secret is written anywhere but the store, which keeps only its hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sys
from typing import TextIO

from werkzeug.security import check_password_hash, generate_password_hash

from container.store import Store

# Names of a variable and of settings, not secrets.
ADMIN_PASSWORD_VAR = "VULCANO_ADMIN_PASSWORD"  # noqa: S105
PASSWORD_HASH_SETTING = "admin_password_hash"  # noqa: S105
SECRET_KEY_SETTING = "panel_secret_key"  # noqa: S105
# werkzeug's scrypt: memory-hard, a salt of its own per hash.
HASH_METHOD = "scrypt"
GENERATED_PASSWORD_BYTES = 18  # 24 URL-safe characters
SECRET_KEY_BYTES = 32


def secret_key(store: Store) -> str:
    """The key that signs sessions: made once, then the same on every start."""
    return store.setting_or_create(SECRET_KEY_SETTING, secrets.token_hex(SECRET_KEY_BYTES))


def admin_password_hash(
    store: Store,
    from_environ: str | None,
    log: TextIO | None = None,
    fingerprint: str | None = None,
) -> str:
    """The stored hash of the admin password, set from the environment or generated.

    ``from_environ`` (VULCANO_ADMIN_PASSWORD's value, or None) replaces the stored hash
    unless that already is its hash. A password generated here is printed to ``log``
    (stderr by default) only when this call stored it (two processes starting at once print one),
    with the panel's certificate ``fingerprint`` (HTTPS) in the same block: whoever
    reads the password there learns what certificate to expect before typing it.
    """
    stored = store.setting(PASSWORD_HASH_SETTING)
    if from_environ:
        if stored is None or not check_password_hash(stored, from_environ):
            stored = generate_password_hash(from_environ, method=HASH_METHOD)
            store.set_setting(PASSWORD_HASH_SETTING, stored)
        return stored
    if stored is not None:
        return stored
    password = secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
    made = generate_password_hash(password, method=HASH_METHOD)
    kept = store.setting_or_create(PASSWORD_HASH_SETTING, made)
    if kept == made:
        block = (
            f"vulcano panel: generated admin password (shown only now; set "
            f"{ADMIN_PASSWORD_VAR} to choose one): {password}"
        )
        if fingerprint:
            block += (
                "\nvulcano panel: log in only if the browser shows this certificate, "
                f"SHA-256 fingerprint {fingerprint}"
            )
        print(block, file=log or sys.stderr, flush=True)
    return kept


def password_matches(password_hash: str, password: str) -> bool:
    """Whether ``password`` is the admin password (werkzeug compares in constant time)."""
    return check_password_hash(password_hash, password)


def hash_marker(password_hash: str) -> str:
    """A short digest of the hash, kept in the session: a new password ends old logins."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:32]


def same_marker(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
