"""Vulcano's shared core: what more than one deployable needs, kept in one place.

The installer (appengine/), the provisioning container (container/) and the node agent
(agent/) all import from here, never copy: errors (`errors`), timeouts and retries
(`policy`), etcd connections (`etcd`), the cluster keyspace (`keyspace`), its records and
registry (`records`, `registry`), the unit-file model (`units`), the cluster network
config (`network`), cloud-config rendering (`cloudconfig`, `cloudquote`, `nodeconfig`), SSH keys
(`sshkeys`) and the CLIs' error reporting (`clierrors`). `lab` is the harness that the
tests, the demo and the benchmarks run. There is no heartbeat schema yet.
"""
