"""The panel's view of the provisioning settings (the app's config holds them)."""

from __future__ import annotations

from flask import current_app

from container.services.provisioning import ProvisioningSettings


def provisioning() -> ProvisioningSettings:
    """The settings the app was created with."""
    settings = current_app.config["PROVISIONING"]
    assert isinstance(settings, ProvisioningSettings)
    return settings
