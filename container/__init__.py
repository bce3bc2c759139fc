"""The provisioning container: a service layer (`services`), the `vulcano` CLI on top of it
(`cli`), and the admin panel to come on the same services."""
