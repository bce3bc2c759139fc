"""The admin panel the provisioning container reports: its URL and certificate fingerprint.

Every heartbeat may describe the panel (`vulcano.heartbeat.PanelSummary`, its fields
checked where the summary is parsed, so a malformed fingerprint is the heartbeat API's
400 naming ``panel.fingerprint``). A summary hook keeps the latest on the install, written
only when it changed: the install page shows it beside the panel's address, for the user
to compare with the certificate the browser is shown before logging in. Not a secret.
"""

from __future__ import annotations

from flask import Flask
from google.cloud import ndb

from appengine import policy
from appengine.heartbeat_api import SUMMARY_HOOKS
from appengine.models import Install
from vulcano.heartbeat import ClusterSummary


def remember_panel(
    install: Install, previous: ClusterSummary | None, current: ClusterSummary
) -> None:
    """Keep ``current``'s panel on the install when it differs from the one kept."""
    panel = current.panel
    if panel is None:
        return
    if (install.panel_url, install.panel_fingerprint) == (panel.url, panel.fingerprint):
        return

    def update() -> None:
        stored: Install | None = install.key.get(timeout=policy.DATASTORE_TIMEOUT)
        if stored is None:
            return
        stored.panel_url = panel.url
        stored.panel_fingerprint = panel.fingerprint
        stored.put()

    ndb.transaction(update, retries=policy.TRANSACTION_RETRIES)
    install.panel_url, install.panel_fingerprint = panel.url, panel.fingerprint


def init_app(app: Flask) -> None:
    """Have every stored heartbeat keep the panel it describes."""
    app.extensions.setdefault(SUMMARY_HOOKS, []).append(remember_panel)
