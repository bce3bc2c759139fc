"""The installer's timeouts, polling intervals and retries, named, in one place.

App config keys of the same name override the defaults where said; a literal timeout
anywhere else in appengine/ is a bug.
"""

from __future__ import annotations

from datetime import timedelta

from vulcano.policy import Backoff

# One Datastore RPC (lookup, commit). Well under App Engine's 60 s request deadline.
DATASTORE_TIMEOUT = 10.0
# ndb retries transient Datastore errors (UNAVAILABLE, DEADLINE_EXCEEDED) with backoff.
DATASTORE_RETRIES = 3
# A transaction that lost a race to a concurrent one is retried this many times.
TRANSACTION_RETRIES = 3
# Every instance (and gunicorn worker) of a first deploy may start at once and race to
# store the installer's signing key (appengine.signing_key): one wins, each retry of the
# others reads its key. More retries than a usual transaction, for that one stampede.
SIGNING_KEY_TRANSACTION_RETRIES = 8

# --- heartbeats and alerts ------------------------------------------------------------

# (A cluster with no heartbeat for UNREACHABLE_INTERVALS of its own intervals, below, is
# "unreachable": on the status page and for its alert.)
# One sweep (cron /cron/heartbeat/sweep) looks at this many overdue clusters at most.
HEARTBEAT_SWEEP_BATCH = 200
# An alert webhook: each POST's deadline (connect, read), how many attempts, and the
# backoff between them. Kept short: delivery runs inside the heartbeat request.
WEBHOOK_TIMEOUT = (3.05, 5.0)
WEBHOOK_ATTEMPTS = 3
WEBHOOK_BACKOFF = Backoff(initial=0.2, maximum=1.0)
# SMTP: the connection's deadline and how many attempts (a refused recipient is not retried).
SMTP_TIMEOUT = 10.0
SMTP_ATTEMPTS = 2
# An alert some destination did not take is sent again by the sweep this long after its
# last try, to the destinations still pending, at most this many times in all.
ALERT_RETRY_AFTER = 300.0
ALERT_DELIVERY_ATTEMPTS = 5

# --- etcd v2 discovery ---------------------------------------------------------------

# A discovery watch that sees no new member answers 200 with an empty body after this
# long, and etcd simply asks again. Under App Engine's and gunicorn's request deadlines.
# App config: DISCOVERY_WATCH_TIMEOUT (seconds).
DISCOVERY_WATCH_TIMEOUT = 20.0

# A waiting watch looks the token up again after this long; the interval grows by
# DISCOVERY_WATCH_POLL_FACTOR up to DISCOVERY_WATCH_POLL_MAX, so members that start
# together find each other within milliseconds and an idle watch costs ~2 reads a second.
DISCOVERY_WATCH_POLL_FIRST = 0.05
DISCOVERY_WATCH_POLL_MAX = 0.5
DISCOVERY_WATCH_POLL_FACTOR = 1.5

# Member registration is one Datastore transaction on the token entity; members that
# register at the same instant contend on it. The losers try again with this backoff
# (ndb's own starts at a second) until this deadline, under the 5 s etcd gives the PUT:
# a failed registration makes etcd exit.
DISCOVERY_REGISTER_BACKOFF = Backoff(initial=0.01, maximum=0.2)
DISCOVERY_REGISTER_DEADLINE = 4.0

# A per-client quota counter (appengine.limits) is one entity that a client's requests
# made at once contend on: the losers try again with this backoff until this deadline,
# then get a 503 with this Retry-After (counting nothing) instead of an error page.
QUOTA_TXN_BACKOFF = Backoff(initial=0.01, maximum=0.2)
QUOTA_TXN_DEADLINE = 3.0
QUOTA_BUSY_RETRY_AFTER = 2

# Tokens older than this are deleted by the cron handler, with their members.
# App config: DISCOVERY_TOKEN_MAX_AGE (seconds).
DISCOVERY_TOKEN_MAX_AGE = timedelta(days=7).total_seconds()

# One cron run deletes at most this many tokens; the next run continues.
DISCOVERY_CLEANUP_BATCH = 200

# --- heartbeats ------------------------------------------------------------------------

# A cluster whose latest summary is older than this many of its own intervals is late on
# the status page; past UNREACHABLE_INTERVALS it is unreachable (its machines' standing
# is then only what the last summary said).
LATE_INTERVALS = 1.5
UNREACHABLE_INTERVALS = 3.0
# The status page reloads itself this often (seconds), without script.
STATUS_REFRESH = 30
