"""The agent's timeouts and retry policies, named, in one place (see vulcano/policy.py)."""

from __future__ import annotations

from vulcano.policy import Backoff

# --- unit engine --------------------------------------------------------------------

# The engine leader's election lease (fleet: TTL about 5 times the reconcile interval).
ENGINE_LEASE_TTL = 10
# The leader refreshes its lease this often.
ENGINE_LEASE_REFRESH = ENGINE_LEASE_TTL / 3
# A follower tries to become leader at least this often (it also wakes on the key's delete).
ENGINE_CAMPAIGN_INTERVAL = 2.0
# After the first watch event, the engine waits this long for more before planning, so a
# burst (10,000 submits, a machine with 1,000 units leaving) is planned once.
ENGINE_BATCH_WINDOW = 0.05
# Even with no event the leader re-plans this often (nothing should need it; a safety net).
ENGINE_RESYNC_INTERVAL = 60.0
# Placement writes per etcd transaction (etcd's default --max-txn-ops is 128).
ENGINE_OPS_PER_TXN = 100
# Retrying after etcd errors.
ENGINE_RETRY = Backoff(initial=0.2, maximum=3.0)

# --- unit agent and runner ----------------------------------------------------------

# The agent stops its units this long before its machine lease can expire, so the
# engine's new placement (made only after the expiry) never overlaps the old copy.
FENCE_MARGIN = 1.5
# How often the unit agent looks at its runner and its lease.
UNIT_AGENT_TICK = 0.25
# Unit states published per etcd transaction (one compare + one put each).
UNIT_STATES_PER_TXN = 50
# How often a unit's journal tail is published to etcd, and how many lines.
JOURNAL_PUBLISH_INTERVAL = 1.0
JOURNAL_LINES = 100
# Stopping a unit: SIGTERM, then SIGKILL after this long (TimeoutStopSec= overrides).
UNIT_STOP_TIMEOUT = 10.0
# Restart=: wait RestartSec= (systemd's default 100 ms) between attempts.
UNIT_RESTART_SEC = 0.1
# The unit shim checks its fence this often.
SHIM_FENCE_CHECK = 0.2
# Starting a unit's shim (a Python process that forks away at once).
SHIM_SPAWN_TIMEOUT = 30.0
# systemctl calls made by the systemd runner.
SYSTEMCTL_TIMEOUT = 30.0
