"""The install's reporting secret: what the provisioning container proves its heartbeats with.

Separate from the manage, read and provisioner tokens and derived from none of them: 256
bits of `secrets` randomness drawn when the install is made. It has two parts,
``<install id>.<secret>``: the install id (the install's key name, itself a hash of the
read token, which it does not reveal) finds the install with one key lookup; Datastore
keeps only the SHA-256 of the secret part (`Install.report_hash`), compared in constant
time. A wrong id and a wrong secret are refused alike.

The provisioning document carries the whole secret (as a 0600 file), so whoever can read
that document can report for the install; the view token alone cannot.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from appengine import policy
from appengine.models import TOKEN_BYTES, Install

_SECRET_RE = re.compile(r"([0-9a-f]{64})\.([A-Za-z0-9_-]{43})")
# Compared against when the install id names nothing, so both refusals do the same work.
_NO_HASH = "0" * 64


def secret_hash(secret: str) -> str:
    """Hex SHA-256 of the secret part: what Datastore keeps."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def new_reporting_secret(install_id: str) -> tuple[str, str]:
    """A fresh reporting secret for the install stored under ``install_id``, and its hash."""
    secret = secrets.token_urlsafe(TOKEN_BYTES)
    return f"{install_id}.{secret}", secret_hash(secret)


def install_for(credential: str) -> Install | None:
    """The live install ``credential`` reports for; None for anything else, alike."""
    match = _SECRET_RE.fullmatch(credential) if isinstance(credential, str) else None
    if match is None:
        return None
    install_id, secret = match.groups()
    install: Install | None = Install.get_by_id(
        install_id, timeout=policy.DATASTORE_TIMEOUT, retries=policy.DATASTORE_RETRIES
    )
    stored = (install.report_hash if install is not None else None) or _NO_HASH
    matches = hmac.compare_digest(stored, secret_hash(secret))
    if install is None or not matches or install.expired:
        return None
    return install
