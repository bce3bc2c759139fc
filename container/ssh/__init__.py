"""SSH to the cluster's machines with paramiko: one module per concept.

`keys` (the container's own ed25519 key), `hostkeys` (fingerprints, the rule that
checks a presented host key), `knownhosts` (the known_hosts file), `destinations`
(where to connect: ssh config, ProxyJump, identity files), `settings` (the flags),
`connection` (one authenticated session, commands), `tunnel` (local port forwards) and
`fanout` (one command on many machines). Nothing here needs an ssh-agent.
"""
