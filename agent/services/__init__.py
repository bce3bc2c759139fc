"""A unit's service on this machine: its health checks and the endpoint published for it."""
