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

# The peer watch: a watch event is applied against the last applied state; a full resync
# (every lease at one revision, the kernel read back) runs this often besides, so a
# missed event or a kernel changed behind the agent's back can never stay wrong for long.
RESYNC_INTERVAL = 30.0
# Coalesce watch events arriving this close together into one reconcile.
WATCH_COALESCE = 0.05
# The forward-chain checks (our accepts against a DROP policy in nftables, the warning
# about iptables-legacy's) cost two processes: a full resync runs them only when they
# last ran this long ago (the periodic one always does: RESYNC_INTERVAL is longer); a
# watch event never does.
FORWARD_CHECK_INTERVAL = 5.0

# Waiting for the network config to appear in etcd.
NETWORK_CONFIG_POLL = 1.0

# Commands run once (network init, sandbox create/delete) give up after this long when
# etcd does not answer, with a clear error.
CLI_ETCD_DEADLINE = 15.0

# Subprocesses the agent runs (nft).
SUBPROCESS_TIMEOUT = 10.0

# Heartbeat samples (agent/monitor/): one every SAMPLE_INTERVAL seconds, on the machine
# lease (configurable within the bounds); a failed write waits for the next one.
SAMPLE_INTERVAL = 10
SAMPLE_INTERVAL_MIN = 1
SAMPLE_INTERVAL_MAX = 3600

# Retrying a failed data-path or registration step while the agent runs.
DAEMON_RETRY = Backoff(initial=0.2, maximum=5.0)
# How often the agent looks at its TLS files (reload when changed, renewal when due) and
# at the cluster's CRL in etcd.
CREDENTIALS_INTERVAL = 10.0
# On shutdown, the agent waits this long for its threads (keep-alive, overlay) to end.
THREAD_JOIN_TIMEOUT = 10.0


# --- services: health checks and endpoints (agent/services/) -------------------------

# Probes run on a small pool of threads: at most this many at once on a machine.
CHECK_WORKERS = 8
# The services loop wakes at least this often (a new instance, a stopped one, a result).
SERVICES_TICK = 0.25
# An HTTP check reads at most this much of the answer's body.
CHECK_HTTP_BODY_LIMIT = 64 * 1024
# After killing an exec check that overstayed its timeout, wait this long for it to go.
CHECK_KILL_WAIT = 2.0
# Retrying the runtime checks' watch (checks/) after etcd errors.
CHECKS_WATCH_RETRY = Backoff(initial=0.2, maximum=3.0)
# A check state refused because the unit's assignment is gone (it is leaving this
# machine) is tried again after this long, not on every pass.
SERVICES_REFUSED_RETRY = 1.0


# --- unit engine --------------------------------------------------------------------

# The engine leader's election lease (fleet: TTL about 5 times the reconcile interval).
# In an agent it is the machine TTL (at most this): a dead leader must not hold up the
# failover of a dead machine's units for longer than the machine's own lease does.
ENGINE_LEASE_TTL = 10
# The leader refreshes its lease this many times per TTL.
ENGINE_LEASE_REFRESHES = 3
# A follower tries to become leader at least this often (it also wakes on the key's delete).
ENGINE_CAMPAIGN_INTERVAL = 2.0
# After the first watch event, the engine waits this long for more before planning, so a
# burst (10,000 submits, a machine with 1,000 units leaving) is planned once.
ENGINE_BATCH_WINDOW = 0.05
# ... and at most this long, when the last plan took longer than the window (a cluster
# of 100,000 units: a plan takes about a second, and units stream in meanwhile). Never
# past the end of a departed machine's grace: the grace itself gathers the burst.
ENGINE_BATCH_MAX = 1.0
# The leader wakes this often while waiting for watch events (to notice a lost lease).
ENGINE_IDLE_TICK = 0.5
# Even with no event the leader re-plans this often (nothing should need it; a safety net).
ENGINE_RESYNC_INTERVAL = 60.0
# A machine whose record disappears keeps its units this long before the engine moves
# them: a crashed agent started again replaces its old record with a new one at once.
ENGINE_MACHINE_GRACE = 0.5
# ... and this long when its agent announced it is restarting (engine/restarting/<id>):
# a stopping agent takes seconds to shut down (overlay, deregistration) and start again.
ENGINE_RESTART_GRACE = 10.0
# Placement writes per etcd transaction (etcd's default --max-txn-ops is 128).
ENGINE_OPS_PER_TXN = 100
# Retrying after etcd errors.
ENGINE_RETRY = Backoff(initial=0.2, maximum=3.0)

# --- machine units and runners ----------------------------------------------------------

# The agent stops its units this long before its machine lease can expire, so the
# engine's new placement (made only after the expiry, plus ENGINE_MACHINE_GRACE) never
# overlaps the old copy: FENCE_MARGIN_FRACTION of the TTL, at most FENCE_MARGIN.
# (A fenced unit is killed at once; a short TTL leaves room for a late keepalive.)
FENCE_MARGIN = 1.5
FENCE_MARGIN_FRACTION = 0.25
# When the agent stops (a restart), its units may run on for this long without it; a
# new agent adopts them in time, or they are fenced before the engine's grace ends.
STOPPED_AGENT_FENCE = ENGINE_RESTART_GRACE - 1.0
# How often the fence keeper passes a new lease confirmation on to the supervisors.
UNIT_FENCE_TICK = 0.1
# How often MachineUnits looks at its lease (and wakes for watch events) ...
MACHINE_UNITS_TICK = 0.25
# ... and, when nothing changed in etcd, at its runner's units.
MACHINE_UNITS_POLL = 0.5
# Stopping MachineUnits waits this long for each of its threads.
UNIT_THREAD_JOIN_TIMEOUT = 10.0
# Unit states published per etcd transaction (one compare + one put each): under
# etcd's default --max-txn-ops of 128 compares and 128 operations.
UNIT_STATES_PER_TXN = 100
# Unit files an agent reads per etcd transaction (one range read each), under 128 too.
UNIT_FILES_PER_TXN = 100
# How often a unit's journal tail is published to etcd, and how many lines.
JOURNAL_PUBLISH_INTERVAL = 1.0
JOURNAL_LINES = 100
# Stopping a unit: SIGTERM, then SIGKILL after this long (TimeoutStopSec= overrides).
UNIT_STOP_TIMEOUT = 10.0
# Restart=: wait RestartSec= (systemd's default 100 ms) between attempts.
UNIT_RESTART_SEC = 0.1
# A unit's supervisor checks its fence (and its processes) this often.
SUPERVISOR_FENCE_CHECK = 0.2
# Starting a unit's supervisor (a Python process that forks away at once).
SUPERVISOR_SPAWN_TIMEOUT = 30.0
# Waiting for a stopped process group (or supervisor) to exit: look this often.
SUPERVISOR_EXIT_POLL = 0.05
# systemctl calls made by the systemd runner.
SYSTEMCTL_TIMEOUT = 30.0
# The systemd runner's fence timer fires this close to its deadline (AccuracySec=;
# systemd's default of 1 min would let units outlive the lease).
SYSTEMD_FENCE_ACCURACY = "10ms"

# --- balancer (agent/balancer/) -----------------------------------------------------------

# Additions to a backend set wait this long for more (--settle), and never longer than
# BALANCER_SETTLE_MAX after the first of them; removals go out at once.
BALANCER_SETTLE = 1.0
BALANCER_SETTLE_MAX = 5.0
# The status record balancers/<name>/<machine> lives on a lease of this TTL, refreshed
# every TTL / KEEPALIVE_DIVISOR seconds.
BALANCER_STATUS_TTL = 10
# A change that could not be applied (status stale) is tried again at most this often.
BALANCER_APPLY_RETRY = 2.0
# A status write that failed is tried again after this long.
BALANCER_STATUS_RETRY = 1.0
# The balancer's loop wakes this often with no watch event (status lease, server alive).
BALANCER_TICK = 0.25
# The server's own check of a staged file (nginx -t, haproxy -c).
BALANCER_CHECK_TIMEOUT = 15.0
# Starting the server until it answers on its status/stats socket, and a reload until
# the new configuration answers there.
BALANCER_START_TIMEOUT = 10.0
BALANCER_RELOAD_TIMEOUT = 10.0
# After a reload, how long the balancer waits for the old workers to finish (they may
# take new connections until the master tells them to stop) before it goes on.
BALANCER_OLD_WORKERS_WAIT = 2.0
# Looking at the status/stats socket while waiting for a start or reload.
BALANCER_CONFIRM_POLL = 0.02
# One request to the status/stats socket.
BALANCER_SOCKET_TIMEOUT = 2.0
# Old workers finish their requests for at most this long after a reload
# (nginx worker_shutdown_timeout, HAProxy hard-stop-after), and stopping waits for it.
BALANCER_DRAIN_SECONDS = 10.0
# Towards backends: connect timeout, idle timeout, and tries per request (a backend that
# refuses the connection is skipped for the next one).
BALANCER_UPSTREAM_CONNECT_TIMEOUT = 2.0
BALANCER_UPSTREAM_TIMEOUT = 30.0
BALANCER_UPSTREAM_TRIES = 3
# HAProxy server slots in a fresh render: at least HAPROXY_MIN_SLOTS, else this many per
# backend; changes that fit in them use the runtime API with no reload.
HAPROXY_MIN_SLOTS = 8
HAPROXY_SLOT_FACTOR = 2
# Retrying after etcd errors (the server keeps serving its last good config meanwhile).
BALANCER_RETRY = Backoff(initial=0.2, maximum=5.0)
