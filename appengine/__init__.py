"""The hosted installer: a Flask app on App Engine that remembers installs in Datastore."""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask

log = logging.getLogger(__name__)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create and configure the installer app."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("VULCANO_SECRET_KEY", "dev"),
        DATASTORE_PROJECT=os.environ.get("DATASTORE_PROJECT_ID")
        or os.environ.get("GOOGLE_CLOUD_PROJECT"),
        MAX_CONTENT_LENGTH=256 * 1024,
    )
    if test_config is not None:
        app.config.from_mapping(test_config)

    from appengine import db, discovery, installs

    db.init_app(app)
    app.register_blueprint(installs.bp)
    app.register_blueprint(discovery.bp)
    return app
