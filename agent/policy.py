"""Every timeout and retry policy of the node agent, named, in one place.

The shared ones (one etcd request, reconnect backoff, transaction conflicts) live in
vulcano/policy.py; these are the agent's own.
"""

from __future__ import annotations

from vulcano.policy import Backoff

# The machine record's lease: fleet used 30 s; we default lower so a dead node is noticed
# quickly. The agent refreshes it every TTL / KEEPALIVE_DIVISOR seconds.
MACHINE_TTL = 10
KEEPALIVE_DIVISOR = 3
MACHINE_TTL_MIN = 2
MACHINE_TTL_MAX = 3600

# A subnet lease lives long (flannel: 24 h) and is renewed well before expiry, so a node
# that is down for a reboot, or an etcd outage, keeps its subnet.
SUBNET_TTL = 24 * 3600
SUBNET_TTL_MIN = 2
SUBNET_RENEW_DIVISOR = 3

# When another agent holds our machine id or public IP, how long we watch its lease for
# a refresh (proof it is alive) before deciding it is a dead record we may wait out.
CONFLICT_PROBE_INTERVAL = 0.25

# The peer watch: besides every watch event, resync everything this often, so a missed
# event can never leave the kernel wrong for long.
RESYNC_INTERVAL = 30.0
# Coalesce watch events arriving this close together into one reconcile.
WATCH_COALESCE = 0.05

# Waiting for the network config to appear in etcd.
NETWORK_CONFIG_POLL = 1.0

# Commands run once (network init, sandbox create/delete) give up after this long when
# etcd does not answer, with a clear error.
CLI_ETCD_DEADLINE = 15.0

# Subprocesses the agent runs (nft).
SUBPROCESS_TIMEOUT = 10.0

# Retrying a failed data-path or registration step while the daemon runs.
DAEMON_RETRY = Backoff(initial=0.2, maximum=5.0)


def is_etcd_error(exc: BaseException) -> bool:
    """Errors that mean "etcd is unreachable or slow": retried with backoff, never fatal."""
    module = type(exc).__module__
    return module.startswith(("etcd3", "grpc")) or isinstance(exc, TimeoutError | ConnectionError)
