"""Every network timeout and retry policy of the shared core, named, in one place.

Deployables add their own in their own policy module (agent/policy.py,
appengine/policy.py); a literal timeout anywhere else is a bug.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

# One etcd request (get/put/txn): etcd answers in milliseconds when healthy.
ETCD_REQUEST_TIMEOUT = 5.0
# How long a failed endpoint is skipped before the client tries it again.
ETCD_ENDPOINT_RETRY = 5.0
# gRPC's own reconnect backoff to an etcd endpoint (its default grows to 120 s, so a
# client would keep failing for many seconds after etcd is back): first and longest wait.
ETCD_GRPC_RECONNECT_INITIAL = 0.2
ETCD_GRPC_RECONNECT_MAX = 1.0
# The largest etcd response a client accepts (gRPC's default is 4 MiB): one read of
# every unit spec of a 100,000-unit cluster is about 30 MB.
ETCD_MAX_RESPONSE_BYTES = 512 * 1024 * 1024
# A request that finds its etcd member dead, or the cluster between leaders, is tried on
# the next member (and again, as the cluster elects a leader) for this long before it
# fails naming every endpoint: an election takes a few of etcd's 1 s election timeouts.
ETCD_FAILOVER_SECONDS = 8.0


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter, capped."""

    initial: float = 0.2
    maximum: float = 5.0
    factor: float = 2.0

    def delays(self) -> Iterator[float]:
        delay = self.initial
        while True:
            yield random.uniform(0, delay)  # noqa: S311 - jitter, not a secret
            delay = min(self.maximum, delay * self.factor)

    def sleep_until(self, deadline: float) -> Iterator[int]:
        """Yield attempt numbers, sleeping between them, until ``deadline`` (monotonic)."""
        for attempt, delay in enumerate(self.delays()):
            yield attempt
            now = time.monotonic()
            if now >= deadline:
                return
            time.sleep(min(delay, deadline - now))


# Retrying while etcd is unreachable: quick at first, never hammering.
ETCD_RECONNECT = Backoff(initial=0.2, maximum=5.0)
# The pause between one request's tries on the members, within ETCD_FAILOVER_SECONDS.
ETCD_FAILOVER = Backoff(initial=0.05, maximum=0.5)
# Retrying a transaction that lost a race (subnet lease, unit target, sandbox address).
TXN_CONFLICT = Backoff(initial=0.01, maximum=0.5)

# A unit command (submit/load/start/...) retries transactions that lost a race this long.
UNIT_COMMAND_RETRY_SECONDS = 10.0
# ... and sends this many of its transactions at once (each at most 128 operations):
# etcd commits what arrives together in one disk write; more would only queue in etcd.
UNIT_COMMAND_TXNS_IN_FLIGHT = 4
# `vulcano start`/`stop` wait this long for the cluster to reach the desired state.
UNIT_COMMAND_WAIT_SECONDS = 60.0
# and look at the unit states this often while waiting.
UNIT_COMMAND_POLL_INTERVAL = 0.25
# A unit the engine explains it cannot place ends the wait once that stays so this long
# (the engine re-plans within milliseconds of a change, so a reason left from before is gone).
UNIT_UNPLACEABLE_SETTLE = 1.0
# `vulcano machine remove` waits this long for the machine's units to move elsewhere.
MACHINE_REMOVE_WAIT_SECONDS = 120.0
# journal -f: how often a follower looks at its stop flag (lines arrive by watch, at
# once), and the pause before a lost watch is opened again from the last revision seen
JOURNAL_STOP_CHECK = 0.1
JOURNAL_REWATCH_DELAY = 0.5

# A cancelled etcd watch (vulcano/watch.py) waits this long for its threads to end;
# gRPC ends them at once, so this only bounds a bug.
WATCH_CANCEL_TIMEOUT = 5.0
