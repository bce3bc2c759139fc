"""Every timeout of the provisioning container's own, named, in one place.

The cluster-facing ones (etcd requests, unit command waits) are the shared core's
(`vulcano.policy`); these are the panel server's.
"""

from __future__ import annotations

from vulcano.policy import Backoff

# gunicorn kills a worker that has not answered a request or heartbeat for this long.
PANEL_WORKER_TIMEOUT = 30
# On SIGTERM (`docker stop`, which kills after 10 s), requests in flight get this long.
PANEL_GRACEFUL_TIMEOUT = 8
# An idle keep-alive connection is closed after this long.
PANEL_KEEPALIVE = 5
# While serving HTTPS the panel's certificate is checked this often (seconds): its own is
# renewed when fewer than 30 days remain (container/panel/tls.py RENEW_BEFORE), so a
# check four times a day leaves it weeks of margin; VULCANO_PANEL_CERT_CHECK_INTERVAL sets it.
PANEL_CERT_CHECK_INTERVAL = 6 * 3600.0
# On serve's exit its certificate keeper gets this long to stop, then is killed.
KEEPER_STOP_TIMEOUT = 5.0

# The hosted installer, asked for a cluster's discovery URL: each attempt's deadline,
# how many attempts, and the pause between them (doubled each time).
INSTALLER_TIMEOUT = 10.0
INSTALLER_ATTEMPTS = 3
INSTALLER_RETRY_DELAY = 0.5
# A cluster's join token (the URL a node #includes) lasts this long unless told.
JOIN_TOKEN_TTL = 24 * 3600
# An enrolment token (in the user-data of a TLS member whose address is found at boot:
# what it asks the panel for its certificate with) lasts this long.
ENROL_TOKEN_TTL = 24 * 3600

# The heartbeat relay (container/services/relay.py): one summary per interval to the
# installer's POST /api/heartbeat. Each POST's deadline (connect, read); a failed send
# (unreachable, 5xx, 429) waits the answer's Retry-After, else RELAY_BACKOFF (doubling,
# jittered, capped), before the outbox is tried again; new summaries keep queueing.
RELAY_INTERVAL = 30.0
RELAY_TIMEOUT = (3.05, 10.0)
RELAY_BACKOFF = Backoff(initial=1.0, maximum=120.0)
# The outbox keeps at most this many summaries (a day at the default interval); past it
# the two oldest are folded into one (container/services/outbox.py says how).
RELAY_OUTBOX_LIMIT = 1440
# A Retry-After longer than this (seconds) is taken as this.
RELAY_RETRY_AFTER_MAX = 300.0
# stop() waits this long for the relay's thread (a POST in flight may outlive it; its
# answer is still recorded).
RELAY_STOP_TIMEOUT = 2.0

# SSH (container/ssh/): connecting, the key exchange and authentication each get this
# long (fleetctl's --ssh-timeout); a failed connection is not retried: the operator
# sees at once which host did not answer.
SSH_TIMEOUT = 10.0
# The CLI's etcd request timeout (fleetctl's --request-timeout): through a tunnel too.
REQUEST_TIMEOUT = 3.0
# A tunnel's SSH connection sends a keepalive this often, so idle NAT or firewalls do
# not drop it under a long `journal -f`.
SSH_KEEPALIVE_INTERVAL = 15
# `vulcano exec`: how many machines are worked on at once.
EXEC_CONCURRENCY = 32
# and how much of one host's output is kept (the rest is cut, and says so).
EXEC_OUTPUT_LIMIT = 1024 * 1024
# ProxyJump chains longer than this are refused (they are a loop in the ssh config).
SSH_MAX_JUMPS = 8
# Closing a tunnel waits this long for its forwarding threads.
TUNNEL_CLOSE_TIMEOUT = 5.0

# Login rate limit, per client address: this many failed logins within the window, then
# 429 (with Retry-After) until the oldest of them leaves the window. Counted in the
# serving process (one gunicorn worker by default, so the whole panel).
LOGIN_MAX_FAILURES = 5
LOGIN_FAILURE_WINDOW = 60.0
# A login lasts this long (seconds), then the panel asks for the password again.
SESSION_LIFETIME = 8 * 3600

# Heartbeats (container/services/monitor.py): a machine whose latest sample is older than
# one interval is late, and down past this many intervals (healthchecks' grace).
SAMPLE_GRACE_INTERVALS = 3
# The interval the panel's live view judges samples by: half again the agents' default
# sample interval (agent/policy.py SAMPLE_INTERVAL), so a sample written on time never
# reads late while the next one is on its way.
HEALTH_PAGE_INTERVAL = 15.0
# A machine a previous summary showed down, of which the cluster keeps no trace at all,
# stays in the summaries (down) this long after it was last seen, then is left out.
DOWN_MACHINE_KEPT = 24 * 3600.0
