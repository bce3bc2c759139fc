"""vulcano-agent: the node agent, one package per concern.

`app.build` wires a node; `lifecycle.Agent` runs it. `membership/` (machine id, the
machine record on its lease), `overlay/` (subnet leases, VXLAN data path, nftables,
sandboxes), `units/` (engine, this machine's units, runners) and `monitor/` (heartbeat
samples on the machine lease) are its concerns;
`config`, `policy`, `statedir`, `watch` and `cli` the plumbing they share.
"""
