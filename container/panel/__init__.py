"""The admin panel: a Flask app on the provisioning container's service layer.

Server-rendered pages, one blueprint per concern; the views call `container.services`
as the CLI's commands do. Today it shows the provisioning settings the installer's
user-data passed and answers health checks; clusters, machines, units and the login
(issue 10) grow on the same factory. Served by `vulcano serve` (gunicorn).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, render_template
from werkzeug.exceptions import HTTPException

from container.services.provisioning import (
    ProvisioningSettings,
    prepare_state_dir,
)

log = logging.getLogger(__name__)

# The panel has no uploads yet; a request body larger than this is refused.
MAX_REQUEST_BYTES = 256 * 1024


def create_app(
    test_config: dict[str, Any] | None = None, settings: ProvisioningSettings | None = None
) -> Flask:
    """Create and configure the admin panel.

    ``settings`` default to the environment the installer's unit sets
    (`ProvisioningSettings.from_environ`); SettingsError or StateDirError when they
    cannot be used, so a container that could not work never starts serving.
    """
    app = Flask(__name__)
    settings = settings or ProvisioningSettings.from_environ()
    prepare_state_dir(settings.state_dir)
    app.config.from_mapping(PROVISIONING=settings, MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES)
    if test_config is not None:
        app.config.from_mapping(test_config)

    from container.panel import audit, health, join, overview

    app.register_blueprint(overview.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(audit.bp)
    app.register_blueprint(join.bp)  # no login: a node holds only the cluster's join token
    _register_error_pages(app)
    log.info(
        "panel for cluster %s (size %d), state in %s",
        settings.cluster_name,
        settings.cluster_size,
        settings.state_dir,
    )
    return app


def _register_error_pages(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[str, int]:
        code = exc.code or 500
        return render_template("error.html", code=code, message=exc.description), code
