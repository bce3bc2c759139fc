"""Vulcano's shared core: what more than one deployable needs, kept in one place.

The installer (appengine/), the provisioning container (container/) and the node agent
(agent/) all import from here: errors, the etcd keyspace, the unit-file model, the
cloud-config renderer, the heartbeat schema. Never copied into a deployable.
"""
