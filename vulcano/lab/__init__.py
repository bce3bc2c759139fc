"""The lab: Vulcano's real parts run on one Linux machine.

Real services on loopback (the Datastore emulator, etcd, the installer under gunicorn),
test hosts as network namespaces on an underlay of their own, one-process unit clusters,
reachability probes, and the demo. The demo, the benchmarks and the tests all run it;
nothing here is a fake of what it starts. Every launcher stops exactly what it started.
"""
