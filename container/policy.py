"""Every timeout of the provisioning container's own, named, in one place.

The cluster-facing ones (etcd requests, unit command waits) are the shared core's
(`vulcano.policy`); these are the panel server's.
"""

from __future__ import annotations

# gunicorn kills a worker that has not answered a request or heartbeat for this long.
PANEL_WORKER_TIMEOUT = 30
# On SIGTERM (`docker stop`, which kills after 10 s), requests in flight get this long.
PANEL_GRACEFUL_TIMEOUT = 8
# An idle keep-alive connection is closed after this long.
PANEL_KEEPALIVE = 5

# Login rate limit, per client address: this many failed logins within the window, then
# 429 (with Retry-After) until the oldest of them leaves the window. Counted in the
# serving process (one gunicorn worker by default, so the whole panel).
LOGIN_MAX_FAILURES = 5
LOGIN_FAILURE_WINDOW = 60.0
# A login lasts this long (seconds), then the panel asks for the password again.
SESSION_LIFETIME = 8 * 3600
