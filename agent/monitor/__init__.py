"""Heartbeat samples: this machine's vitals and its units' states, in etcd on its lease."""
