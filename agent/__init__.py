"""vulcano-agent: the node agent (membership, overlay network, unit engine and runner)."""
