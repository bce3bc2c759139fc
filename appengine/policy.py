"""The installer's timeouts and retries, named, in one place."""

from __future__ import annotations

# One Datastore RPC (lookup, commit). Well under App Engine's 60 s request deadline.
DATASTORE_TIMEOUT = 10.0
# ndb retries transient Datastore errors (UNAVAILABLE, DEADLINE_EXCEEDED) with backoff.
DATASTORE_RETRIES = 3
# A transaction that lost a race to a concurrent one is retried this many times.
TRANSACTION_RETRIES = 3
