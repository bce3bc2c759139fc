"""Cluster membership: this host's machine id, and its machine record on an etcd lease."""
