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

# The hosted installer, asked for a cluster's discovery URL: each attempt's deadline,
# how many attempts, and the pause between them (doubled each time).
INSTALLER_TIMEOUT = 10.0
INSTALLER_ATTEMPTS = 3
INSTALLER_RETRY_DELAY = 0.5
# A cluster's join token (the URL a node #includes) lasts this long unless told.
JOIN_TOKEN_TTL = 24 * 3600
