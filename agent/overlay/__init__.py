"""The overlay network: subnet leases, the VXLAN data path, nftables, subnet.env, sandboxes."""
