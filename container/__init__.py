"""The provisioning container: the `vulcano` CLI and the admin panel."""
